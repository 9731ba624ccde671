package order_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/order-service/internal/order"
	"seckill/order-service/migrations"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

type fixture struct {
	h   *order.Handler
	db  *gorm.DB
	srv *testbroker.Server
}

func setup(t *testing.T) fixture {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	srv := testbroker.Start(t)
	srv.CreateTopic(events.TopicOrder, 4)
	log := slog.New(slog.DiscardHandler)
	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-order-test", log,
		mq.NewMetrics(prometheus.NewRegistry(), "test"))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	// Level 5 (1 min): timeouts stay scheduled in the broker for the whole test.
	h := order.NewHandler(gdb, p, 5, log, order.NewMetrics(prometheus.NewRegistry()))
	return fixture{h: h, db: gdb, srv: srv}
}

func body(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func createdMsg(t *testing.T, msgID, orderID string) mq.Message {
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: events.TagCreated, Keys: orderID,
		Body: body(t, events.OrderCreated{
			Version: events.Version, EventID: events.EventID(orderID, events.TagCreated), OrderID: orderID,
			UserID: "u1", ProductID: "p1", Quantity: 2, AmountCents: 1998, CreatedAt: time.Now().UTC(),
		})}
}

func paidMsg(t *testing.T, msgID, orderID string) mq.Message {
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: events.TagPaid, Keys: orderID,
		Body: body(t, events.OrderPaid{
			Version: events.Version, EventID: events.EventID(orderID, events.TagPaid), OrderID: orderID, AmountCents: 1998,
		})}
}

func timeoutMsg(t *testing.T, msgID, orderID string) mq.Message {
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: events.TagTimeout, Keys: orderID,
		Body: body(t, events.PayTimeout{
			Version: events.Version, EventID: events.EventID(orderID, events.TagTimeout), OrderID: orderID,
		})}
}

func shippedMsg(t *testing.T, msgID, orderID string) mq.Message {
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: events.TagShipped, Keys: orderID,
		Body: body(t, events.OrderShipped{
			Version: events.Version, EventID: events.EventID(orderID, events.TagShipped), OrderID: orderID, ShipmentID: "s1",
		})}
}

// sent counts the messages with tag for orderID in the broker's ORDER topic
// (delayed messages appear there only when due).
func (f fixture) sent(tag, orderID string) int {
	n := 0
	for _, m := range f.srv.Messages(events.TopicOrder) {
		if m.Tags == tag && slices.Contains(strings.Fields(m.Keys), orderID) {
			n++
		}
	}
	return n
}

func (f fixture) status(t *testing.T, orderID string) string {
	t.Helper()
	o, err := order.Get(f.db, orderID)
	if err != nil {
		t.Fatalf("Get(%s) error = %v", orderID, err)
	}
	return o.Status
}

func (f fixture) rows(t *testing.T, orderID string) int64 {
	t.Helper()
	var n int64
	if err := f.db.Model(&order.Order{}).Where("order_id = ?", orderID).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func mustApply(t *testing.T, f fixture, m mq.Message) {
	t.Helper()
	if err := f.h.Apply(t.Context(), m); err != nil {
		t.Fatalf("Apply(%s %s) error = %v", m.Tag, m.ID, err)
	}
}

func TestCreatedDeliveredTwice(t *testing.T) {
	f := setup(t)
	mustApply(t, f, createdMsg(t, "m1", "o1"))
	mustApply(t, f, createdMsg(t, "m1", "o1")) // broker redelivery: same msg ID
	mustApply(t, f, createdMsg(t, "m2", "o1")) // producer re-send (outbox replay): new msg ID, same event ID
	if n := f.rows(t, "o1"); n != 1 {
		t.Errorf("order rows for o1 = %d, want 1", n)
	}
	o, err := order.Get(f.db, "o1")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusCreated || o.Quantity != 2 || o.AmountCents != 1998 || o.UserID != "u1" || o.ProductID != "p1" {
		t.Errorf("order o1 = %+v, want created u1 p1 qty 2 amount 1998", o)
	}
	// Every delivery (re-)sends the delayed timeout: a crash between commit
	// and send must not lose it. Level 5 keeps them scheduled.
	if n := f.srv.PendingDelayed(); n != 3 {
		t.Errorf("scheduled timeout messages = %d, want 3", n)
	}
}

func TestPaidThenShipped(t *testing.T) {
	f := setup(t)
	mustApply(t, f, createdMsg(t, "m1", "o1"))
	mustApply(t, f, paidMsg(t, "m2", "o1"))
	if got := f.status(t, "o1"); got != order.StatusPaid {
		t.Fatalf("status after paid = %s, want paid", got)
	}
	mustApply(t, f, paidMsg(t, "m2", "o1")) // redelivery re-sends confirmed, no second effect
	if n := f.sent(events.TagConfirmed, "o1"); n != 2 {
		t.Errorf("confirmed messages = %d, want 2 (one per delivery)", n)
	}
	mustApply(t, f, shippedMsg(t, "m3", "o1"))
	mustApply(t, f, shippedMsg(t, "m4", "o1"))
	if got := f.status(t, "o1"); got != order.StatusShipped {
		t.Errorf("status after shipped = %s, want shipped", got)
	}
}

func TestPaidBeforeCreatedIsRetried(t *testing.T) {
	f := setup(t)
	err := f.h.Apply(t.Context(), paidMsg(t, "m2", "o1"))
	if err == nil || errors.Is(err, mq.ErrPermanent) {
		t.Fatalf("Apply(paid) on a missing order error = %v, want a retryable error", err)
	}
	// The failed attempt left no dedup claim: the redelivery applies.
	mustApply(t, f, createdMsg(t, "m1", "o1"))
	mustApply(t, f, paidMsg(t, "m2", "o1"))
	if got := f.status(t, "o1"); got != order.StatusPaid {
		t.Errorf("status = %s, want paid", got)
	}
}

func TestTimeoutClosesUnpaidOrder(t *testing.T) {
	f := setup(t)
	mustApply(t, f, createdMsg(t, "m1", "o1"))
	for _, id := range []string{"t1", "t1", "t2"} {
		if err := f.h.Timeout(t.Context(), timeoutMsg(t, id, "o1")); err != nil {
			t.Fatalf("Timeout(%s) error = %v", id, err)
		}
	}
	o, err := order.Get(f.db, "o1")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusClosed || o.CloseReason != order.ReasonPayTimeout {
		t.Errorf("order = %s/%s, want closed/pay_timeout", o.Status, o.CloseReason)
	}
	msgs := f.srv.Messages(events.TopicOrder)
	var closed []events.OrderClosed
	for _, m := range msgs {
		if m.Tags == events.TagClosed {
			var ev events.OrderClosed
			if err := json.Unmarshal(m.Body, &ev); err != nil {
				t.Fatal(err)
			}
			closed = append(closed, ev)
		}
	}
	// Each delivery sends closed (downstream deduplicates on the event ID).
	if len(closed) != 3 {
		t.Fatalf("closed messages = %d, want 3", len(closed))
	}
	if c := closed[0]; c.EventID != "o1:closed" || c.ProductID != "p1" || c.Quantity != 2 || c.Reason != order.ReasonPayTimeout {
		t.Errorf("closed event = %+v, want o1:closed p1 qty 2 pay_timeout", c)
	}
	// A payment that lands after the close loses: no confirmed.
	mustApply(t, f, paidMsg(t, "m2", "o1"))
	if got, n := f.status(t, "o1"), f.sent(events.TagConfirmed, "o1"); got != order.StatusClosed || n != 0 {
		t.Errorf("after late payment: status %s, confirmed %d; want closed, 0", got, n)
	}
}

func TestTimeoutOnPaidOrderDoesNotClose(t *testing.T) {
	f := setup(t)
	mustApply(t, f, createdMsg(t, "m1", "o1"))
	mustApply(t, f, paidMsg(t, "m2", "o1"))
	if err := f.h.Timeout(t.Context(), timeoutMsg(t, "t1", "o1")); err != nil {
		t.Fatalf("Timeout error = %v", err)
	}
	if got, n := f.status(t, "o1"), f.sent(events.TagClosed, "o1"); got != order.StatusPaid || n != 0 {
		t.Errorf("status %s, closed messages %d; want paid, 0", got, n)
	}
}

func TestTimeoutOnMissingOrderIsRetried(t *testing.T) {
	f := setup(t)
	err := f.h.Timeout(t.Context(), timeoutMsg(t, "t1", "nope"))
	if err == nil || errors.Is(err, mq.ErrPermanent) {
		t.Fatalf("Timeout on a missing order error = %v, want a retryable error", err)
	}
}

// TestPayVersusTimeout races paid and timeout on the same orders: exactly one
// of created→paid and created→closed wins each.
func TestPayVersusTimeout(t *testing.T) {
	f := setup(t)
	const n = 40
	for i := range n {
		mustApply(t, f, createdMsg(t, fmt.Sprintf("c%d", i), fmt.Sprintf("race%d", i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		id := fmt.Sprintf("race%d", i)
		wg.Go(func() { errs <- f.h.Apply(t.Context(), paidMsg(t, "p"+id, id)) })
		wg.Go(func() { errs <- f.h.Timeout(t.Context(), timeoutMsg(t, "t"+id, id)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("handler error = %v", err)
		}
	}
	paid, closed := 0, 0
	for i := range n {
		id := fmt.Sprintf("race%d", i)
		c, x := f.sent(events.TagConfirmed, id), f.sent(events.TagClosed, id)
		switch st := f.status(t, id); {
		case st == order.StatusPaid && c == 1 && x == 0:
			paid++
		case st == order.StatusClosed && c == 0 && x == 1:
			closed++
		default:
			t.Errorf("order %s: status %s, confirmed %d, closed %d; want exactly one winner", id, st, c, x)
		}
	}
	t.Logf("pay won %d, timeout won %d of %d", paid, closed, n)
}

func TestPoisonMessages(t *testing.T) {
	f := setup(t)
	tests := []struct {
		name string
		msg  mq.Message
	}{
		{"bad JSON", mq.Message{ID: "x1", Tag: events.TagCreated, Body: []byte("{nope")}},
		{"wrong version", mq.Message{ID: "x2", Tag: events.TagPaid, Body: []byte(`{"version":99,"order_id":"o1"}`)}},
		{"no order id", mq.Message{ID: "x3", Tag: events.TagPaid, Body: []byte(`{"version":1}`)}},
		{"created without product", mq.Message{ID: "x4", Tag: events.TagCreated, Body: []byte(`{"version":1,"order_id":"o1","user_id":"u","quantity":1}`)}},
		{"unknown tag", mq.Message{ID: "x5", Tag: "refunded", Body: []byte(`{}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.h.Apply(t.Context(), tc.msg); !errors.Is(err, mq.ErrPermanent) {
				t.Errorf("Apply(%s) error = %v, want %v", tc.name, err, mq.ErrPermanent)
			}
		})
	}
	if err := f.h.Timeout(t.Context(), mq.Message{ID: "x6", Tag: events.TagTimeout, Body: []byte("[]")}); !errors.Is(err, mq.ErrPermanent) {
		t.Errorf("Timeout(bad JSON) error = %v, want %v", err, mq.ErrPermanent)
	}
}

func TestSweeperClosesOverdueOrders(t *testing.T) {
	f := setup(t)
	mustApply(t, f, createdMsg(t, "m1", "old"))
	mustApply(t, f, createdMsg(t, "m2", "fresh"))
	mustApply(t, f, createdMsg(t, "m3", "paid"))
	mustApply(t, f, paidMsg(t, "m4", "paid"))
	past := time.Now().UTC().Add(-time.Hour)
	if err := f.db.Model(&order.Order{}).Where("order_id IN ?", []string{"old", "paid"}).Update("created_at", past).Error; err != nil {
		t.Fatal(err)
	}
	s := order.NewSweeper(f.h, 10*time.Minute, time.Hour)
	n, err := s.SweepOnce(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("SweepOnce = %d, %v; want 1, nil", n, err)
	}
	o, err := order.Get(f.db, "old")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusClosed || o.CloseReason != order.ReasonSweeper || f.sent(events.TagClosed, "old") != 1 {
		t.Errorf("old order: %s/%s, closed messages %d; want closed/sweeper, 1", o.Status, o.CloseReason, f.sent(events.TagClosed, "old"))
	}
	if st := f.status(t, "fresh"); st != order.StatusCreated {
		t.Errorf("fresh order status = %s, want created", st)
	}
	if st := f.status(t, "paid"); st != order.StatusPaid {
		t.Errorf("paid order status = %s, want paid", st)
	}
	if ids, err := s.Recent(t.Context(), time.Hour); err != nil || len(ids) != 1 || ids[0] != "old" {
		t.Errorf("Recent() = %v, %v; want [old]", ids, err)
	}
	// The delayed timeout of the swept order arrives later: no second effect.
	if err := f.h.Timeout(t.Context(), timeoutMsg(t, "t1", "old")); err != nil {
		t.Fatal(err)
	}
	if st := f.status(t, "old"); st != order.StatusClosed {
		t.Errorf("old order after its timeout = %s, want closed", st)
	}
}
