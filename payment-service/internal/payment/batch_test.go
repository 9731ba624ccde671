package payment_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

// batchEnv is a Handler on a fresh database with its metrics registry.
type batchEnv struct {
	h   *payment.Handler
	db  *gorm.DB
	reg *prometheus.Registry
}

func newBatchEnv(t *testing.T) batchEnv {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	reg := prometheus.NewRegistry()
	return batchEnv{h: payment.NewHandler(gdb, testLog(t), payment.NewMetrics(reg)), db: gdb, reg: reg}
}

// createdMsgs returns n created events m<i> of orders o<i>.
func createdMsgs(t *testing.T, n int) []mq.Message {
	ms := make([]mq.Message, n)
	for i := range ms {
		ms[i] = createdMsg(t, fmt.Sprintf("m%02d", i), orderID(i), int64(100+i))
	}
	return ms
}

// state is what payment's created handling leaves behind.
type state struct {
	Payments []payment.Payment
	Claims   []string
	Created  float64 // payment_payments_total{result="created"}
}

func (e batchEnv) state(t *testing.T) state {
	t.Helper()
	var s state
	if err := e.db.Order("order_id").Find(&s.Payments).Error; err != nil {
		t.Fatalf("read payments: %v", err)
	}
	for i := range s.Payments {
		s.Payments[i].CreatedAt, s.Payments[i].UpdatedAt = time.Time{}, time.Time{} // the handler's clock
	}
	if err := e.db.Table("consumed_messages").Order("consumer, msg_key").
		Pluck("CONCAT(consumer, '/', msg_key)", &s.Claims).Error; err != nil {
		t.Fatalf("read claims: %v", err)
	}
	s.Created = testenv.Counter(t, e.reg, "payment_payments_total", map[string]string{"result": "created"})
	return s
}

// singles is the state Handle alone reaches from the deliveries ms.
func singles(t *testing.T, ms ...mq.Message) state {
	t.Helper()
	e := newBatchEnv(t)
	for _, m := range ms {
		mustHandle(t, e.h, m)
	}
	return e.state(t)
}

func TestHandleBatchMatchesSingles(t *testing.T) {
	t.Parallel()
	ms := createdMsgs(t, 10)
	want := singles(t, ms...)
	e := newBatchEnv(t)
	if err := e.h.HandleBatch(t.Context(), ms); err != nil {
		t.Fatalf("HandleBatch(%d created) error = %v, want nil", len(ms), err)
	}
	if diff := cmp.Diff(want, e.state(t)); diff != "" {
		t.Errorf("state after HandleBatch differs from Handle one by one (-singles +batch):\n%s", diff)
	}
	if len(want.Payments) != 10 || len(want.Claims) != 20 || want.Created != 10 {
		t.Errorf("singles state: %d payments, %d claims, created %v; want 10, 20, 10",
			len(want.Payments), len(want.Claims), want.Created)
	}
}

// A batch meeting a message, event or payment recorded before fails with
// nothing written; pkg/mq then gives each message to Handle, which ends where
// Handle alone would have.
func TestHandleBatchDuplicateFallsBack(t *testing.T) {
	t.Parallel()
	ms := createdMsgs(t, 10)
	otherKeys := message(t, "x03", events.TagCreated, orderID(3), events.OrderCreated{
		Version: events.Version, EventID: "o0003:other", OrderID: orderID(3),
		UserID: "u1", ProductID: "p1", Quantity: 1, AmountCents: 55, CreatedAt: time.Now().UTC(),
	})
	tests := []struct {
		name   string
		before mq.Message // handled alone before the batch
	}{
		{"message delivered before", ms[3]},
		{"event re-sent before", createdMsg(t, "r03", orderID(3), 103)},
		{"payment recorded under other keys", otherKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := singles(t, append([]mq.Message{tc.before}, ms...)...)
			e := newBatchEnv(t)
			mustHandle(t, e.h, tc.before)
			before := e.state(t)
			err := e.h.HandleBatch(t.Context(), ms)
			if err == nil || errors.Is(err, mq.ErrNoBatch) {
				t.Fatalf("HandleBatch with a duplicate error = %v, want a failed batch", err)
			}
			if diff := cmp.Diff(before, e.state(t)); diff != "" {
				t.Fatalf("failed batch left writes (-before +after):\n%s", diff)
			}
			for _, m := range ms {
				mustHandle(t, e.h, m)
			}
			if diff := cmp.Diff(want, e.state(t)); diff != "" {
				t.Errorf("state after the fallback differs from Handle one by one (-singles +fallback):\n%s", diff)
			}
		})
	}
}

func TestHandleBatchNotForMe(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t)
	ms := createdMsgs(t, 3)
	with := func(m mq.Message) []mq.Message { return []mq.Message{ms[0], m, ms[2]} }
	redelivered := ms[1]
	redelivered.ReconsumeTimes = 1
	sameOrder := message(t, "x01", events.TagCreated, orderID(0), events.OrderCreated{
		Version: events.Version, EventID: "o0000:other", OrderID: orderID(0),
		UserID: "u1", ProductID: "p1", Quantity: 1, AmountCents: 55, CreatedAt: time.Now().UTC(),
	})
	tests := []struct {
		name string
		ms   []mq.Message
	}{
		{"closed", with(closedMsg(t, "c1", orderID(1)))},
		{"redelivery", with(redelivered)},
		{"bad JSON", with(mq.Message{ID: "x1", Tag: events.TagCreated, Body: []byte("{")})},
		{"negative amount", with(createdMsg(t, "x2", orderID(1), -5))},
		{"same message twice", with(ms[0])},
		{"same event twice", with(createdMsg(t, "r00", orderID(0), 100))},
		{"same order twice", with(sameOrder)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.h.HandleBatch(t.Context(), tc.ms); !errors.Is(err, mq.ErrNoBatch) {
				t.Errorf("HandleBatch(%s) error = %v, want %v", tc.name, err, mq.ErrNoBatch)
			}
			if got := e.state(t); len(got.Payments) != 0 || len(got.Claims) != 0 || got.Created != 0 {
				t.Errorf("after HandleBatch(%s): %d payments, %d claims, created %v; want none", tc.name,
					len(got.Payments), len(got.Claims), got.Created)
			}
		})
	}
}

// A batch costs a fixed number of statements: BEGIN, the claims, the
// payments, COMMIT; Handle costs four per message.
func TestHandleBatchStatements(t *testing.T) {
	t.Parallel()
	ms := createdMsgs(t, 20)
	e := newBatchEnv(t)
	sqlDB, err := e.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // one session: its counter sees every statement
	single := statements(t, e.db, func() {
		for _, m := range ms[:10] {
			mustHandle(t, e.h, m)
		}
	})
	batch := statements(t, e.db, func() {
		if err := e.h.HandleBatch(t.Context(), ms[10:]); err != nil {
			t.Fatalf("HandleBatch error = %v", err)
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
// are recorded in batches; then, with every delivery stored twice (same
// message ID), events re-sent (new message ID) and closed events among new
// ones, batches fall back to Handle. Each event has one effect.
func TestConsumeCreatedInBatches(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	log := testLog(t)
	cfg := mq.Config{NameServers: []string{env.broker.NameSrvAddr()}}
	producer, err := mq.NewProducer(t.Context(), cfg, testenv.Unique(t, "PID_"), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	var batched atomic.Int64
	batch := func(ctx context.Context, ms []mq.Message) error {
		err := env.handler.HandleBatch(ctx, ms)
		if err == nil {
			batched.Add(int64(len(ms)))
		}
		return err
	}
	sub := mq.Subscription{Group: "GID-payment", Rate: 200, Batch: batch,
		Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: events.TagCreated + " || " + events.TagClosed}}}
	c, err := mq.Subscribe(t.Context(), cfg, sub, env.handler.Handle, log, env.mqm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	deliveries := 0.0
	send := func(ms []mq.Message) {
		t.Helper()
		var out []mq.Outgoing
		for _, m := range ms {
			out = append(out, mq.Outgoing{Topic: events.TopicOrder, Tag: m.Tag, Keys: []string{m.Keys},
				ShardingKey: m.Keys, Body: m.Body})
		}
		if err := producer.SendBatch(t.Context(), out); err != nil {
			t.Fatalf("SendBatch: %v", err)
		}
	}
	ok := map[string]string{"group": "GID-payment", "result": "ok"}
	handled := func(what string) {
		t.Helper()
		testenv.Eventually(t, time.Minute, what, func() bool {
			return testenv.Counter(t, env.reg, "payment_messages_consumed_total", ok) >= deliveries
		})
	}
	created := createdMsgs(t, 100)
	send(created[:60])
	deliveries += 60
	handled("the first 60 created events handled")
	if batched.Load() == 0 {
		t.Errorf("none of %v deliveries handled in a batch", deliveries)
	}
	t.Logf("%d of %v deliveries handled in batches", batched.Load(), deliveries)

	env.broker.DuplicateDelivery(2)
	second := append(created[:20:20], created[60:]...) // 20 re-sent, 40 new
	for i := range 10 {
		second = append(second, closedMsg(t, "", orderID(i)))
	}
	send(second)
	deliveries += 2 * float64(len(second))
	handled("every delivery handled")

	for i := range 100 {
		want := payment.StatusPending
		if i < 10 {
			want = payment.StatusCancelled
		}
		p, rows := paymentRow(t, env.db, orderID(i))
		if rows != 1 || p.Status != want || p.AmountCents != int64(100+i) {
			t.Errorf("payments of %s = %d rows, %+v; want 1 %s row of %d", orderID(i), rows, p, want, 100+i)
		}
	}
	if got := testenv.Counter(t, env.reg, "payment_payments_total", map[string]string{"result": "created"}); got != 100 {
		t.Errorf("payment_payments_total{created} = %v, want 100", got)
	}
	if got, want := claims(t, env.db), int64(2*(100+10)); got != want {
		t.Errorf("claims = %d, want %d", got, want)
	}
}
