package order_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/order-service/internal/order"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

// createdMsgs returns n created events m<i> of orders o<i>, made once so
// that every fixture fed with them stores the same rows.
func createdMsgs(t *testing.T, n int) []mq.Message {
	ms := make([]mq.Message, n)
	for i := range ms {
		ms[i] = createdMsg(t, fmt.Sprintf("m%02d", i), fmt.Sprintf("o%02d", i))
	}
	return ms
}

// state is what the GID-order handler leaves in the database and the broker.
type state struct {
	Orders  []order.Order
	Claims  []string
	Pending int // scheduled timeout messages
}

func (f fixture) state(t *testing.T) state {
	t.Helper()
	var s state
	if err := f.db.Order("order_id").Find(&s.Orders).Error; err != nil {
		t.Fatalf("read orders: %v", err)
	}
	for i := range s.Orders {
		s.Orders[i].UpdatedAt = time.Time{} // the handler's clock, not the event's
	}
	if err := f.db.Table("consumed_messages").Order("consumer, msg_key").
		Pluck("CONCAT(consumer, '/', msg_key)", &s.Claims).Error; err != nil {
		t.Fatalf("read claims: %v", err)
	}
	s.Pending = f.srv.PendingDelayed()
	return s
}

// singles is the state Apply alone reaches from the deliveries ms.
func singles(t *testing.T, ms ...mq.Message) state {
	t.Helper()
	f := setup(t)
	for _, m := range ms {
		mustApply(t, f, m)
	}
	return f.state(t)
}

func TestApplyBatchMatchesSingles(t *testing.T) {
	ms := createdMsgs(t, 10)
	want := singles(t, ms...)
	f := setup(t)
	if err := f.h.ApplyBatch(t.Context(), ms); err != nil {
		t.Fatalf("ApplyBatch(%d created) error = %v, want nil", len(ms), err)
	}
	if diff := cmp.Diff(want, f.state(t)); diff != "" {
		t.Errorf("state after ApplyBatch differs from Apply one by one (-singles +batch):\n%s", diff)
	}
	if len(want.Orders) != 10 || len(want.Claims) != 20 || want.Pending != 10 {
		t.Errorf("singles state: %d orders, %d claims, %d timeouts; want 10, 20, 10",
			len(want.Orders), len(want.Claims), want.Pending)
	}
}

// A batch meeting a message, event or order persisted before fails with
// nothing written; pkg/mq then gives each message to Apply, which ends where
// Apply alone would have.
func TestApplyBatchDuplicateFallsBack(t *testing.T) {
	ms := createdMsgs(t, 10)
	resent := createdMsg(t, "r03", "o03") // producer re-send: new message ID
	otherKeys := createdMsg(t, "x03", "o03")
	otherKeys.Body = body(t, events.OrderCreated{Version: events.Version, EventID: "o03:other", OrderID: "o03",
		UserID: "u1", ProductID: "p1", Quantity: 2, AmountCents: 1998, CreatedAt: time.Now().UTC()})
	tests := []struct {
		name   string
		before mq.Message // applied alone before the batch
	}{
		{"message delivered before", ms[3]},
		{"event re-sent before", resent},
		{"order persisted under other keys", otherKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := singles(t, append([]mq.Message{tc.before}, ms...)...)
			f := setup(t)
			mustApply(t, f, tc.before)
			before := f.state(t)
			err := f.h.ApplyBatch(t.Context(), ms)
			if err == nil || errors.Is(err, mq.ErrNoBatch) {
				t.Fatalf("ApplyBatch with a duplicate error = %v, want a failed batch", err)
			}
			if diff := cmp.Diff(before, f.state(t)); diff != "" {
				t.Fatalf("failed batch left writes or sends (-before +after):\n%s", diff)
			}
			for _, m := range ms {
				mustApply(t, f, m)
			}
			if diff := cmp.Diff(want, f.state(t)); diff != "" {
				t.Errorf("state after the fallback differs from Apply one by one (-singles +fallback):\n%s", diff)
			}
		})
	}
}

// When a timeout send fails after the commit, the batch fails and Apply of
// each message finds its order persisted and sends its timeout.
func TestApplyBatchTimeoutSendFails(t *testing.T) {
	ms := createdMsgs(t, 5)
	want := singles(t, ms...)
	f := setup(t)
	f.srv.RefuseSends(true)
	err := f.h.ApplyBatch(t.Context(), ms)
	f.srv.RefuseSends(false)
	if err == nil || errors.Is(err, mq.ErrNoBatch) {
		t.Fatalf("ApplyBatch with sends refused error = %v, want a failed batch", err)
	}
	if got := f.state(t); len(got.Orders) != len(ms) || got.Pending != 0 {
		t.Fatalf("after the failed sends: %d orders, %d timeouts; want %d, 0", len(got.Orders), got.Pending, len(ms))
	}
	for _, m := range ms {
		mustApply(t, f, m)
	}
	if diff := cmp.Diff(want, f.state(t)); diff != "" {
		t.Errorf("state after the fallback differs from Apply one by one (-singles +fallback):\n%s", diff)
	}
}

func TestApplyBatchNotForMe(t *testing.T) {
	f := setup(t)
	ms := createdMsgs(t, 3)
	with := func(m mq.Message) []mq.Message { return []mq.Message{ms[0], m, ms[2]} }
	redelivered := ms[1]
	redelivered.ReconsumeTimes = 1
	resent := createdMsg(t, "r01", "o00") // the event of ms[0] under a new message ID
	tests := []struct {
		name string
		ms   []mq.Message
	}{
		{"paid", with(paidMsg(t, "p1", "o01"))},
		{"shipped", with(shippedMsg(t, "s1", "o01"))},
		{"timeout", with(timeoutMsg(t, "t1", "o01"))},
		{"redelivery", with(redelivered)},
		{"bad JSON", with(mq.Message{ID: "x1", Tag: events.TagCreated, Body: []byte("{nope")})},
		{"created without product", with(mq.Message{ID: "x2", Tag: events.TagCreated,
			Body: []byte(`{"version":1,"order_id":"o01","user_id":"u","quantity":1}`)})},
		{"same message twice", with(ms[0])},
		{"same event twice", with(resent)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.h.ApplyBatch(t.Context(), tc.ms); !errors.Is(err, mq.ErrNoBatch) {
				t.Errorf("ApplyBatch(%s) error = %v, want %v", tc.name, err, mq.ErrNoBatch)
			}
			if got := f.state(t); len(got.Orders) != 0 || len(got.Claims) != 0 || got.Pending != 0 {
				t.Errorf("after ApplyBatch(%s): %d orders, %d claims, %d timeouts; want none", tc.name,
					len(got.Orders), len(got.Claims), got.Pending)
			}
		})
	}
}

// A batch costs a fixed number of statements: BEGIN, the claims, the
// orders, COMMIT; Apply costs four per message.
func TestApplyBatchStatements(t *testing.T) {
	ms := createdMsgs(t, 20)
	f := setup(t)
	sqlDB, err := f.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // one session: its counter sees every statement
	single := statements(t, f.db, func() {
		for _, m := range ms[:10] {
			mustApply(t, f, m)
		}
	})
	batch := statements(t, f.db, func() {
		if err := f.h.ApplyBatch(t.Context(), ms[10:]); err != nil {
			t.Fatalf("ApplyBatch error = %v", err)
		}
	})
	t.Logf("10 created events: %d statements one by one, %d as a batch", single, batch)
	if batch > 4 {
		t.Errorf("statements of a batch of 10 = %d, want at most 4", batch)
	}
}

// statements is the number of statements fn sends on gdb's one connection.
func statements(t *testing.T, gdb *gorm.DB, fn func()) int64 {
	t.Helper()
	questions := func() int64 {
		var name string
		var n int64
		if err := gdb.Raw("SHOW SESSION STATUS LIKE 'Questions'").Row().Scan(&name, &n); err != nil {
			t.Fatalf("read Questions: %v", err)
		}
		return n
	}
	base := questions()
	idle := questions() - base // the SHOW itself
	before := questions()
	fn()
	return questions() - before - idle
}

// Through a real consumer: created events that pass the throttle together
// are persisted in batches; then, with every delivery stored twice (same
// message ID) and events re-sent (new message ID) among new ones, batches
// fall back to Apply. Each order is persisted once and every delivery
// schedules one timeout, as with Apply alone.
func TestConsumeCreatedInBatches(t *testing.T) {
	f := setup(t)
	cfg := mq.Config{NameServers: []string{f.srv.NameSrvAddr()}}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	p, err := mq.NewProducer(t.Context(), cfg, testenv.Unique(t, "PID_"), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var batched atomic.Int64
	batch := func(ctx context.Context, ms []mq.Message) error {
		err := f.h.ApplyBatch(ctx, ms)
		if err == nil {
			batched.Add(int64(len(ms)))
		}
		return err
	}
	sub := mq.Subscription{Group: "GID-order", Rate: 200, Batch: batch,
		Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: events.TagCreated}}}
	c, err := mq.Subscribe(t.Context(), cfg, sub, f.h.Apply, log, mq.NewMetrics(reg, "order"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	msgs := make([]mq.Message, 100)
	for i := range msgs {
		msgs[i] = createdMsg(t, "", fmt.Sprintf("o%03d", i))
	}
	deliveries := 0.0
	send := func(ms []mq.Message) {
		t.Helper()
		var out []mq.Outgoing
		for _, m := range ms {
			out = append(out, mq.Outgoing{Topic: events.TopicOrder, Tag: events.TagCreated, Keys: []string{m.Keys},
				ShardingKey: m.Keys, Body: m.Body})
		}
		if err := p.SendBatch(t.Context(), out); err != nil {
			t.Fatalf("SendBatch: %v", err)
		}
	}
	ok := map[string]string{"group": "GID-order", "result": "ok"}
	handled := func(what string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, what, func() bool {
			return testenv.Counter(t, reg, "order_messages_consumed_total", ok) >= deliveries
		})
	}

	send(msgs[:60])
	deliveries += 60
	handled("the first 60 orders handled")
	if batched.Load() == 0 {
		t.Errorf("none of %v deliveries handled in a batch", deliveries)
	}
	t.Logf("%d of %v deliveries handled in batches", batched.Load(), deliveries)

	f.srv.DuplicateDelivery(2)
	send(append(msgs[:20:20], msgs[60:]...)) // 20 re-sent, 40 new
	deliveries += 2 * 60
	handled("every delivery handled")
	got := f.state(t)
	if len(got.Orders) != 100 || len(got.Claims) != 200 || float64(got.Pending) != deliveries {
		t.Errorf("%d orders, %d claims, %d timeouts; want 100, 200, %v",
			len(got.Orders), len(got.Claims), got.Pending, deliveries)
	}
}
