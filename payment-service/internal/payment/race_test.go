package payment_test

import (
	"errors"
	"sync"
	"testing"

	"seckill/payment-service/internal/payment"
)

// Hundreds of orders each get a pay and a close at the same moment. Whatever
// the interleaving, each payment ends in exactly one consistent outcome: the
// pay won and the close refunded it, or the close won and the pay was refused.
func TestPayAndCloseRace(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	const n = 300
	for i := range n {
		mustHandle(t, env.handler, createdMsg(t, "m"+orderID(i), orderID(i), int64(100+i)))
	}

	payErrs := make([]error, n)
	closeErrs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, payErrs[i] = env.svc.Pay(t.Context(), orderID(i))
		})
		wg.Go(func() {
			<-start
			closeErrs[i] = env.handler.Handle(t.Context(), closedMsg(t, "c"+orderID(i), orderID(i)))
		})
		close(start)
	}
	wg.Wait()
	closeNotifier(t, env.notifier) // every paid event sent or given up

	paid := env.paidEvents(t)
	var refunded, cancelled int
	for i := range n {
		id := orderID(i)
		if closeErrs[i] != nil {
			t.Errorf("close %s error = %v, want nil", id, closeErrs[i])
			continue
		}
		p, rows := paymentRow(t, env.db, id)
		if rows != 1 {
			t.Errorf("payments of %s = %d rows, want 1", id, rows)
			continue
		}
		switch {
		case payErrs[i] == nil:
			refunded++
			if p.Status != payment.StatusRefunded {
				t.Errorf("%s: pay succeeded, then closed; status = %q, want %q", id, p.Status, payment.StatusRefunded)
			}
			if len(paid[id]) != 1 {
				t.Errorf("%s: paid events = %d, want 1", id, len(paid[id]))
			}
		case errors.Is(payErrs[i], payment.ErrClosed):
			cancelled++
			if p.Status != payment.StatusCancelled {
				t.Errorf("%s: pay refused as closed; status = %q, want %q", id, p.Status, payment.StatusCancelled)
			}
			if len(paid[id]) != 0 {
				t.Errorf("%s: paid events = %d for a refused pay, want 0", id, len(paid[id]))
			}
		default:
			t.Errorf("pay %s error = %v, want nil or ErrClosed", id, payErrs[i])
		}
	}
	t.Logf("%d pairs: pay won %d (refunded), close won %d (cancelled)", n, refunded, cancelled)
}
