package payment_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newHandler(t *testing.T) (*payment.Handler, *gorm.DB) {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	return payment.NewHandler(gdb, testLog(t), payment.NewMetrics(prometheus.NewRegistry())), gdb
}

func createdMsg(t *testing.T, msgID, orderID string, amount int64) mq.Message {
	t.Helper()
	return message(t, msgID, events.TagCreated, orderID, events.OrderCreated{
		Version: events.Version, EventID: events.EventID(orderID, events.TagCreated), OrderID: orderID,
		UserID: "u1", ProductID: "p1", Quantity: 1, AmountCents: amount, CreatedAt: time.Now().UTC(),
	})
}

func closedMsg(t *testing.T, msgID, orderID string) mq.Message {
	t.Helper()
	return message(t, msgID, events.TagClosed, orderID, events.OrderClosed{
		Version: events.Version, EventID: events.EventID(orderID, events.TagClosed), OrderID: orderID,
		ProductID: "p1", Quantity: 1, Reason: "pay_timeout", ClosedAt: time.Now().UTC(),
	})
}

func message(t *testing.T, msgID, tag, orderID string, ev any) mq.Message {
	t.Helper()
	body, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: tag, Keys: orderID, Body: body}
}

func paymentRow(t *testing.T, gdb *gorm.DB, orderID string) (payment.Payment, int64) {
	t.Helper()
	var ps []payment.Payment
	if err := gdb.Where("order_id = ?", orderID).Find(&ps).Error; err != nil {
		t.Fatalf("read payments of %s: %v", orderID, err)
	}
	if len(ps) == 0 {
		return payment.Payment{}, 0
	}
	return ps[0], int64(len(ps))
}

func claims(t *testing.T, gdb *gorm.DB) int64 {
	t.Helper()
	var n int64
	if err := gdb.Table("consumed_messages").Where("consumer = ?", payment.Consumer).Count(&n).Error; err != nil {
		t.Fatalf("count consumed_messages: %v", err)
	}
	return n
}

func mustHandle(t *testing.T, h *payment.Handler, m mq.Message) {
	t.Helper()
	if err := h.Handle(t.Context(), m); err != nil {
		t.Fatalf("Handle(%s %s) error = %v, want nil", m.Tag, m.ID, err)
	}
}

func TestCreatedRedelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		second string // message ID of the second delivery
	}{
		{"same message delivered twice", "m1"},
		{"same event re-sent with a new message ID", "m2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, gdb := newHandler(t)
			mustHandle(t, h, createdMsg(t, "m1", "o1", 999))
			// A re-send carries the same event; a different amount would show
			// a second effect if one happened.
			mustHandle(t, h, createdMsg(t, tc.second, "o1", 1))

			p, n := paymentRow(t, gdb, "o1")
			if n != 1 || p.Status != payment.StatusPending || p.AmountCents != 999 {
				t.Errorf("payments of o1 = %d rows, first %+v; want 1 pending row of 999", n, p)
			}
		})
	}
}

func TestClosedRedelivery(t *testing.T) {
	t.Parallel()
	for _, second := range []string{"c1", "c2"} {
		t.Run("second delivery "+second, func(t *testing.T) {
			t.Parallel()
			h, gdb := newHandler(t)
			mustHandle(t, h, createdMsg(t, "m1", "o1", 500))
			mustHandle(t, h, closedMsg(t, "c1", "o1"))
			before := claims(t, gdb)
			mustHandle(t, h, closedMsg(t, second, "o1"))

			if p, _ := paymentRow(t, gdb, "o1"); p.Status != payment.StatusCancelled {
				t.Errorf("status of o1 = %q, want %q", p.Status, payment.StatusCancelled)
			}
			if after := claims(t, gdb); after != before {
				t.Errorf("claims after a duplicate closed = %d, want %d (the duplicate's tx rolled back)", after, before)
			}
		})
	}
}

// A closed event that overtakes its created event fails (to be redelivered)
// and leaves no claim, so the redelivery applies it.
func TestClosedBeforeCreatedIsRetried(t *testing.T) {
	t.Parallel()
	h, gdb := newHandler(t)
	err := h.Handle(t.Context(), closedMsg(t, "c1", "o1"))
	if err == nil || errors.Is(err, mq.ErrPermanent) {
		t.Fatalf("Handle(closed before created) error = %v, want a retryable error", err)
	}
	if n := claims(t, gdb); n != 0 {
		t.Fatalf("claims after a failed tx = %d, want 0", n)
	}
	mustHandle(t, h, createdMsg(t, "m1", "o1", 500))
	mustHandle(t, h, closedMsg(t, "c1", "o1")) // the redelivery
	if p, _ := paymentRow(t, gdb, "o1"); p.Status != payment.StatusCancelled {
		t.Errorf("status of o1 = %q, want %q", p.Status, payment.StatusCancelled)
	}
}

func TestPoisonMessagesArePermanent(t *testing.T) {
	t.Parallel()
	h, gdb := newHandler(t)
	valid := createdMsg(t, "m0", "o1", 1)
	tests := []struct {
		name string
		msg  mq.Message
	}{
		{"bad json", mq.Message{ID: "m1", Tag: events.TagCreated, Body: []byte("{")}},
		{"unknown tag", mq.Message{ID: "m2", Tag: "refund", Body: valid.Body}},
		{"wrong version", message(t, "m3", events.TagCreated, "o1", events.OrderCreated{Version: 99, EventID: "o1:created", OrderID: "o1"})},
		{"no order id", message(t, "m4", events.TagClosed, "", events.OrderClosed{Version: events.Version, EventID: "x"})},
		{"no event id", message(t, "m5", events.TagCreated, "o1", events.OrderCreated{Version: events.Version, OrderID: "o1"})},
		{"negative amount", createdMsg(t, "m6", "o1", -5)},
		{"no product or user", message(t, "m7", events.TagCreated, "o1", events.OrderCreated{Version: events.Version, EventID: "o1:created", OrderID: "o1", AmountCents: 999})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.Handle(t.Context(), tc.msg); !errors.Is(err, mq.ErrPermanent) {
				t.Errorf("Handle(%s) error = %v, want mq.ErrPermanent", tc.name, err)
			}
		})
	}
	if n := claims(t, gdb); n != 0 {
		t.Errorf("claims after poison messages = %d, want 0", n)
	}
}

func TestPayThenCloseRefunds(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	mustHandle(t, env.handler, createdMsg(t, "m1", "o1", 700))
	if _, err := env.svc.Pay(t.Context(), "o1"); err != nil {
		t.Fatalf("Pay(o1) error = %v, want nil", err)
	}
	mustHandle(t, env.handler, closedMsg(t, "c1", "o1"))
	if p, _ := paymentRow(t, env.db, "o1"); p.Status != payment.StatusRefunded {
		t.Errorf("status of o1 = %q, want %q", p.Status, payment.StatusRefunded)
	}
	if _, err := env.svc.Pay(t.Context(), "o1"); !errors.Is(err, payment.ErrClosed) {
		t.Errorf("Pay(refunded o1) error = %v, want ErrClosed", err)
	}
}

func TestCloseThenPayIsRejected(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	mustHandle(t, env.handler, createdMsg(t, "m1", "o1", 700))
	mustHandle(t, env.handler, closedMsg(t, "c1", "o1"))
	if _, err := env.svc.Pay(t.Context(), "o1"); !errors.Is(err, payment.ErrClosed) {
		t.Errorf("Pay(closed o1) error = %v, want ErrClosed", err)
	}
	if p, _ := paymentRow(t, env.db, "o1"); p.Status != payment.StatusCancelled {
		t.Errorf("status of o1 = %q, want %q", p.Status, payment.StatusCancelled)
	}
}

func orderID(i int) string { return fmt.Sprintf("o%04d", i) }

// Paying twice answers paid twice and sends the paid event each time (a
// client retry repairs a lost event); the event is the same business event.
func TestPayIsIdempotentAndResendsPaid(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	mustHandle(t, env.handler, createdMsg(t, "m1", "o1", 700))
	for range 2 {
		p, err := env.svc.Pay(t.Context(), "o1")
		if err != nil || p.Status != payment.StatusPaid {
			t.Fatalf("Pay(o1) = %q, %v; want paid, nil", p.Status, err)
		}
	}
	closeNotifier(t, env.notifier)
	evs := env.paidEvents(t)["o1"]
	if len(evs) != 2 {
		t.Fatalf("paid events of o1 = %d, want 2", len(evs))
	}
	for _, ev := range evs {
		if ev.EventID != events.EventID("o1", events.TagPaid) || ev.AmountCents != 700 || ev.Version != events.Version {
			t.Errorf("paid event = %+v, want event_id o1:paid, amount 700, version %d", ev, events.Version)
		}
	}
	if evs[0].PaidAt != evs[1].PaidAt {
		t.Errorf("paid_at of the re-send = %v, want the first %v", evs[1].PaidAt, evs[0].PaidAt)
	}
}

// While the broker refuses sends the notifier retries; once sends come back
// the event goes out. When the broker keeps refusing, it gives up and the
// payment stays paid (the order's close will refund it).
func TestNotifierRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		recovers  bool
		wantSends int
	}{
		{"broker comes back", true, 1},
		{"broker keeps refusing", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			mustHandle(t, env.handler, createdMsg(t, "m1", "o1", 700))
			env.broker.RefuseSends(true)
			if _, err := env.svc.Pay(t.Context(), "o1"); err != nil {
				t.Fatalf("Pay(o1) error = %v, want nil (the event is sent in the background)", err)
			}
			if tc.recovers {
				testenv.Eventually(t, time.Minute, "a failed send", func() bool {
					return testenv.Counter(t, env.reg, "payment_messages_sent_total", map[string]string{"mode": "async", "result": "error"}) > 0
				})
				env.broker.RefuseSends(false)
				testenv.Eventually(t, time.Minute, "a backoff retry to send the paid event", func() bool {
					return len(env.paidEvents(t)["o1"]) == 1
				})
			}
			closeNotifier(t, env.notifier) // a pending retry goes out now
			if got := len(env.paidEvents(t)["o1"]); got != tc.wantSends {
				t.Errorf("paid events of o1 = %d, want %d", got, tc.wantSends)
			}
			if p, _ := paymentRow(t, env.db, "o1"); p.Status != payment.StatusPaid {
				t.Errorf("status of o1 = %q, want paid", p.Status)
			}
		})
	}
}
