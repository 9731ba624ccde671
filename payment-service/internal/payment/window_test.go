package payment_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"seckill/pkg/events"
	"seckill/pkg/mq"

	"seckill/payment-service/internal/payment"
)

// The pay window, decided once per order: a pay before the deadline takes
// the payment (and writes paid), one after it is refused and expires the
// order (and writes closed); an order is payable from its reservation on.
func TestPay(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *env, i int)
		pays       int
		wantErr    error
		wantStatus payment.Status
		wantOut    []string
	}{
		{"reserved only, in time", func(t *testing.T, e *env, i int) { e.reserve(t, i, time.Minute) },
			1, nil, payment.StatusPaid, []string{events.TagPaid}},
		{"paid twice: one payment, one event", func(t *testing.T, e *env, i int) { e.reserve(t, i, time.Minute) },
			2, nil, payment.StatusPaid, []string{events.TagPaid}},
		{"after the deadline: refused, expired", func(t *testing.T, e *env, i int) { e.reserve(t, i, -time.Millisecond) },
			1, payment.ErrClosed, payment.StatusExpired, []string{events.TagClosed}},
		{"created consumed, reservation gone", func(t *testing.T, e *env, i int) {
			mustHandle(t, e.handler, createdMsg("m", e.order(i, time.Minute)))
		}, 1, nil, payment.StatusPaid, []string{events.TagPaid}},
		{"refused by inventory first", func(t *testing.T, e *env, i int) {
			mustHandle(t, e.handler, refusedMsg("c", e.reserve(t, i, time.Minute)))
		}, 1, payment.ErrClosed, payment.StatusCancelled, nil},
		{"never accepted", func(*testing.T, *env, int) {}, 1, payment.ErrNotFound, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			tc.setup(t, e, 1)
			var err error
			for range tc.pays {
				_, err = e.svc.Pay(t.Context(), e.id(1))
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Pay() error = %v, want %v", err, tc.wantErr)
			}
			if got := e.row(t, e.id(1)).Status; got != tc.wantStatus {
				t.Errorf("status = %q, want %q", got, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantOut, e.out(t, e.id(1))); diff != "" {
				t.Errorf("events written (-want +got):\n%s", diff)
			}
		})
	}
}

// A pay timeout expires what is still pending at the deadline (making the
// row from the order it carries if none exists yet), leaves a paid order
// alone, and goes back to the broker when it came long before the deadline.
func TestTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	paid := e.reserve(t, 1, time.Minute)
	if _, err := e.svc.Pay(t.Context(), paid.OrderID); err != nil {
		t.Fatal(err)
	}
	paid.PayDeadline = time.Now().UTC().Add(-time.Second) // the timeout's copy says it is due
	pending := e.order(2, -time.Millisecond)
	mustHandle(t, e.handler, createdMsg("m2", pending))
	unknown := e.reserve(t, 3, -time.Millisecond) // no row yet (created still in the backlog): made from the reservation
	lost := e.order(6, -time.Millisecond)         // no row and no reservation: the sweeper's, once created made the row

	mustHandle(t, e.handler, timeoutMsg("t1", paid, pending, unknown, lost))
	mustHandle(t, e.handler, timeoutMsg("t1", paid, pending, unknown, lost)) // redelivered: no second effect
	for _, c := range []struct {
		id   string
		want payment.Status
		out  []string
	}{
		{paid.OrderID, payment.StatusPaid, []string{events.TagPaid}},
		{pending.OrderID, payment.StatusExpired, []string{events.TagClosed}},
		{unknown.OrderID, payment.StatusExpired, []string{events.TagClosed}},
		{lost.OrderID, "", nil},
	} {
		if got := e.row(t, c.id).Status; got != c.want {
			t.Errorf("%s status = %q, want %q", c.id, got, c.want)
		}
		if diff := cmp.Diff(c.out, e.out(t, c.id)); diff != "" {
			t.Errorf("%s events (-want +got):\n%s", c.id, diff)
		}
	}
	if got := e.counter(t, "payment_decisions_total", "expired"); got != 2 {
		t.Errorf("payment_decisions_total{expired} = %v, want 2", got)
	}

	early := e.reserve(t, 4, time.Minute)
	err := e.handler.Handle(t.Context(), timeoutMsg("t2", early))
	if err == nil || errors.Is(err, mq.ErrPermanent) {
		t.Errorf("Handle(timeout a minute early) error = %v, want a retryable error", err)
	}
	if got := e.row(t, early.OrderID).Status; got != payment.StatusPending {
		t.Errorf("status after an early timeout = %q, want pending", got)
	}
	// Due in a moment: the handler waits for the deadline instead.
	soon := e.reserve(t, 5, 300*time.Millisecond)
	mustHandle(t, e.handler, timeoutMsg("t3", soon))
	if got := e.row(t, soon.OrderID).Status; got != payment.StatusExpired {
		t.Errorf("status after a timeout 300 ms early = %q, want expired", got)
	}
}

// Inventory's refusal cancels an unpaid payment and refunds a taken one; a
// later pay is refused.
func TestRefusal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pending, paid := e.reserve(t, 1, time.Minute), e.reserve(t, 2, time.Minute)
	if _, err := e.svc.Pay(t.Context(), paid.OrderID); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, e.handler, createdMsg("m1", pending))
	for _, ev := range []events.OrderCreated{pending, paid} {
		mustHandle(t, e.handler, refusedMsg("c"+ev.OrderID, ev))
		mustHandle(t, e.handler, refusedMsg("c"+ev.OrderID, ev)) // redelivered
	}
	if got := e.row(t, pending.OrderID).Status; got != payment.StatusCancelled {
		t.Errorf("refused unpaid order: status %q, want cancelled", got)
	}
	if got := e.row(t, paid.OrderID).Status; got != payment.StatusRefunded {
		t.Errorf("refused paid order: status %q, want refunded", got)
	}
	if _, err := e.svc.Pay(t.Context(), pending.OrderID); !errors.Is(err, payment.ErrClosed) {
		t.Errorf("Pay(refused order) error = %v, want ErrClosed", err)
	}
	if got := e.counter(t, "payment_payments_total", "refunded"); got != 1 {
		t.Errorf("payment_payments_total{refunded} = %v, want 1", got)
	}
}

// The created event completes a row a pay made, without undoing the payment.
func TestCreatedAfterPay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.reserve(t, 1, time.Minute)
	if _, err := e.svc.Pay(t.Context(), ev.OrderID); err != nil {
		t.Fatal(err)
	}
	mustHandle(t, e.handler, createdMsg("m1", ev))
	mustHandle(t, e.handler, createdMsg("m1", ev)) // redelivered
	p := e.row(t, ev.OrderID)
	if p.Status != payment.StatusPaid || p.AmountCents != ev.AmountCents || !p.Deadline().Equal(ev.PayDeadline) {
		t.Errorf("payment after created = %+v, want paid, %d cents, deadline %v", p, ev.AmountCents, ev.PayDeadline)
	}
	var claims int64
	e.db.Table("consumed_messages").Count(&claims)
	if claims != 2 {
		t.Errorf("claims = %d, want 2 (message ID and event ID, once)", claims)
	}
}

// Pays and timeouts racing around each order's deadline: every order ends
// in exactly one of paid (one paid event, paid before the deadline) and
// expired (one closed event); a pay answered ok always ends paid, a refused
// one always expired.
func TestDeadlineRace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const n = 200
	start := time.Now().Add(time.Second)
	deadlines := make([]time.Time, n)
	for i := range deadlines {
		// Deadlines spread over ±4 s around the moment the race starts (the
		// pays and timeouts take a while under -race on a busy box).
		deadlines[i] = start.Add(time.Duration(i%100-50) * 80 * time.Millisecond)
	}
	evs := e.reserveMany(t, deadlines)
	time.Sleep(time.Until(start))
	payErrs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, payErrs[i] = e.svc.Pay(t.Context(), evs[i].OrderID) })
		wg.Go(func() {
			if err := e.handler.Handle(t.Context(), timeoutMsg("t"+evs[i].OrderID, evs[i])); err != nil {
				t.Errorf("timeout of %s: %v", evs[i].OrderID, err)
			}
		})
	}
	wg.Wait()
	raced := time.Since(start)
	var paid, expired int
	for i, ev := range evs {
		p, out := e.row(t, ev.OrderID), e.out(t, ev.OrderID)
		switch {
		case payErrs[i] == nil:
			paid++
			if p.Status != payment.StatusPaid || !slices.Equal(out, []string{events.TagPaid}) {
				t.Errorf("%s: pay answered ok, ends %q with events %v; want paid, [paid]", ev.OrderID, p.Status, out)
			}
			if p.PaidAt == nil || !p.PaidAt.Before(ev.PayDeadline) {
				t.Errorf("%s: paid at %v, deadline %v", ev.OrderID, p.PaidAt, ev.PayDeadline)
			}
		case errors.Is(payErrs[i], payment.ErrClosed):
			expired++
			if p.Status != payment.StatusExpired || !slices.Equal(out, []string{events.TagClosed}) {
				t.Errorf("%s: pay refused, ends %q with events %v; want expired, [closed]", ev.OrderID, p.Status, out)
			}
		default:
			t.Errorf("pay %s error = %v", ev.OrderID, payErrs[i])
		}
	}
	t.Logf("%d orders: %d paid in time, %d expired, raced in %s", n, paid, expired, raced.Round(time.Millisecond))
	switch {
	case raced > 2*time.Second:
		// The deadlines end 4 s after the start: on a box this busy every
		// pay may land after them, and straddling them is not guaranteed.
		t.Logf("the race took %s: too slow to require that it straddle the deadlines", raced)
	case paid == 0 || expired == 0:
		t.Errorf("paid %d, expired %d: the race did not straddle the deadlines", paid, expired)
	}
}
