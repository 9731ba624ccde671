package payment_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
)

// closeState is what payment's closed handling leaves behind.
type closeState struct {
	Payments  []payment.Payment
	Claims    []string
	Cancelled float64 // payment_payments_total{result="cancelled"}
	Refunded  float64 // payment_payments_total{result="refunded"}
}

func (e batchEnv) closeState(t *testing.T) closeState {
	t.Helper()
	s := e.state(t)
	return closeState{
		Payments: s.Payments, Claims: s.Claims,
		Cancelled: testenv.Counter(t, e.reg, "payment_payments_total", map[string]string{"result": "cancelled"}),
		Refunded:  testenv.Counter(t, e.reg, "payment_payments_total", map[string]string{"result": "refunded"}),
	}
}

// closedMsgs returns the closed events c<i> of orders o<i>.
func closedMsgs(t *testing.T, n int) []mq.Message {
	ms := make([]mq.Message, n)
	for i := range ms {
		ms[i] = closedMsg(t, fmt.Sprintf("c%02d", i), orderID(i))
	}
	return ms
}

// closeEnv is a batchEnv holding the payments of created: those of orders 1
// and 2 paid, 3 cancelled and 4 refunded before, the others pending.
func closeEnv(t *testing.T, created []mq.Message) batchEnv {
	t.Helper()
	e := newBatchEnv(t)
	for _, m := range created {
		mustHandle(t, e.h, m)
	}
	set := map[string]payment.Status{
		orderID(1): payment.StatusPaid, orderID(2): payment.StatusPaid,
		orderID(3): payment.StatusCancelled, orderID(4): payment.StatusRefunded,
	}
	for id, st := range set {
		if err := e.db.Model(&payment.Payment{}).Where("order_id = ?", id).Update("status", st).Error; err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// closeSingles is the state Handle alone reaches from ms on closeEnv.
func closeSingles(t *testing.T, created []mq.Message, ms ...mq.Message) closeState {
	t.Helper()
	e := closeEnv(t, created)
	for _, m := range ms {
		mustHandle(t, e.h, m)
	}
	return e.closeState(t)
}

func TestHandleClosedBatchMatchesSingles(t *testing.T) {
	t.Parallel()
	created, ms := createdMsgs(t, 10), closedMsgs(t, 10)
	want := closeSingles(t, created, ms...)
	e := closeEnv(t, created)
	if err := e.h.HandleBatch(t.Context(), ms); err != nil {
		t.Fatalf("HandleBatch(%d closed) error = %v, want nil", len(ms), err)
	}
	if diff := cmp.Diff(want, e.closeState(t)); diff != "" {
		t.Errorf("state after HandleBatch differs from Handle one by one (-singles +batch):\n%s", diff)
	}
	if want.Cancelled != 6 || want.Refunded != 2 || len(want.Claims) != 40 {
		t.Errorf("singles state: cancelled %v, refunded %v, %d claims; want 6, 2, 40",
			want.Cancelled, want.Refunded, len(want.Claims))
	}
}

// A batch meeting a closed event applied before or a payment not created
// yet fails with nothing written; pkg/mq then gives each message to Handle,
// which ends where Handle alone would have.
func TestHandleClosedBatchFallsBack(t *testing.T) {
	t.Parallel()
	created, ms := createdMsgs(t, 10), closedMsgs(t, 10)
	tests := []struct {
		name    string
		before  []mq.Message // handled alone before the batch
		batch   []mq.Message
		missing string // the order without a payment: Handle asks for a retry
	}{
		{"message delivered before", []mq.Message{ms[5]}, ms, ""},
		{"event re-sent before", []mq.Message{closedMsg(t, "r05", orderID(5))}, ms, ""},
		{"payment not created yet", nil, append(ms[:9:9], closedMsg(t, "c99", orderID(99))), orderID(99)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			handle := func(e batchEnv, ms []mq.Message) {
				t.Helper()
				for _, m := range ms {
					err := e.h.Handle(t.Context(), m)
					if m.Keys == tc.missing {
						if err == nil || errors.Is(err, mq.ErrPermanent) {
							t.Fatalf("Handle(%s) without a payment error = %v, want a retryable error", m.ID, err)
						}
					} else if err != nil {
						t.Fatalf("Handle(%s) error = %v", m.ID, err)
					}
				}
			}
			g := closeEnv(t, created)
			handle(g, append(tc.before, tc.batch...))
			want := g.closeState(t)

			e := closeEnv(t, created)
			handle(e, tc.before)
			before := e.closeState(t)
			err := e.h.HandleBatch(t.Context(), tc.batch)
			if err == nil || errors.Is(err, mq.ErrNoBatch) {
				t.Fatalf("HandleBatch error = %v, want a failed batch", err)
			}
			if diff := cmp.Diff(before, e.closeState(t)); diff != "" {
				t.Fatalf("failed batch left writes (-before +after):\n%s", diff)
			}
			handle(e, tc.batch)
			if diff := cmp.Diff(want, e.closeState(t)); diff != "" {
				t.Errorf("state after the fallback differs from Handle one by one (-singles +fallback):\n%s", diff)
			}
		})
	}
}

func TestHandleClosedBatchNotForMe(t *testing.T) {
	t.Parallel()
	created, ms := createdMsgs(t, 10), closedMsgs(t, 3)
	e := closeEnv(t, created)
	before := e.closeState(t)
	with := func(m mq.Message) []mq.Message { return []mq.Message{ms[0], m, ms[2]} }
	redelivered := ms[1]
	redelivered.ReconsumeTimes = 1
	sameOrder := message(t, "x01", events.TagClosed, orderID(0), events.OrderClosed{
		Version: events.Version, EventID: "o0000:other", OrderID: orderID(0), Reason: "pay_timeout", ClosedAt: time.Now().UTC(),
	})
	tests := []struct {
		name string
		ms   []mq.Message
	}{
		{"created", with(createdMsg(t, "m01", orderID(11), 5))},
		{"redelivery", with(redelivered)},
		{"bad JSON", with(mq.Message{ID: "x1", Tag: events.TagClosed, Body: []byte("{")})},
		{"no event id", with(mq.Message{ID: "x2", Tag: events.TagClosed, Body: []byte(`{"version":1,"order_id":"o0001"}`)})},
		{"same message twice", with(ms[0])},
		{"same event twice", with(closedMsg(t, "r00", orderID(0)))},
		{"same order twice", with(sameOrder)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.h.HandleBatch(t.Context(), tc.ms); !errors.Is(err, mq.ErrNoBatch) {
				t.Errorf("HandleBatch(%s) error = %v, want %v", tc.name, err, mq.ErrNoBatch)
			}
			if diff := cmp.Diff(before, e.closeState(t)); diff != "" {
				t.Errorf("HandleBatch(%s) left writes (-before +after):\n%s", tc.name, diff)
			}
		})
	}
}

// A batch of pending payments costs a fixed number of statements: BEGIN,
// the claims, the locking read, the cancel, COMMIT; Handle costs five per
// message.
func TestHandleClosedBatchStatements(t *testing.T) {
	t.Parallel()
	e := newBatchEnv(t)
	for _, m := range createdMsgs(t, 20) {
		mustHandle(t, e.h, m)
	}
	sqlDB, err := e.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // one session: its counter sees every statement
	ms := closedMsgs(t, 20)
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
	t.Logf("10 closed events: %d statements one by one, %d as a batch", single, batch)
	if batch > 5 {
		t.Errorf("statements of a batch of 10 = %d, want at most 5", batch)
	}
	if got := e.closeState(t).Cancelled; got != 20 {
		t.Errorf("payment_payments_total{cancelled} = %v, want 20", got)
	}
}
