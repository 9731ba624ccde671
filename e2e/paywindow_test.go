package e2e

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"seckill/e2e/internal/stack"
	"seckill/pkg/events"
)

// The pay window at a peak (issue "At any peak, a buyer who pays in time
// keeps the order"): the deadline is fixed at acceptance, an accepted order
// is payable from its 202 on whatever the consumers' backlog, one arbiter
// (payment-service) decides paid or expired, and a payment answered 200 is
// never undone — except by inventory's refusal, the one legitimate refund.

// buyer is one client of a pay-window test: its order and its payment as it
// saw them.
type buyer struct {
	user     string
	orderID  string
	deadline time.Time
	accepted time.Time     // when the 202 arrived
	payable  time.Duration // 202 -> first pay answer other than 404
	notFound int           // pay answers 404 before that
	payCode  int           // the pay's final status code (0: did not pay)
	answered time.Time     // when that answer arrived
	payError string        // its error code, if any
}

// buyAll has n users (u<prefix>-i) each order one unit of product through
// conns concurrent clients, as fast as the system answers; payers (by index)
// pay right after their 202 (through as many clients of their own),
// retrying a 404 for up to a minute.
func buyAll(t *testing.T, s *stack.Stack, product, prefix string, n, conns int, pays func(i int) bool) []*buyer {
	t.Helper()
	ctx := t.Context()
	bs := make([]*buyer, n)
	next := make(chan int)
	payNext := make(chan *buyer, n)
	var wg, payers sync.WaitGroup
	for range conns {
		payers.Go(func() {
			for b := range payNext {
				b.pay(ctx, t, s)
			}
		})
	}
	for range conns {
		wg.Go(func() {
			for i := range next {
				b := &buyer{user: fmt.Sprintf("u%s-%05d", prefix, i)}
				bs[i] = b
				body := map[string]any{"user_id": b.user, "product_id": product, "quantity": 1}
				h := http.Header{"Idempotency-Key": {b.user}}
				r, err := s.Order.Do(ctx, http.MethodPost, "/api/v1/orders", h, body)
				if err != nil || r.Status != http.StatusAccepted {
					continue // sold out or refused: not a buyer of the sale
				}
				var or struct {
					OrderID     string    `json:"order_id"`
					PayDeadline time.Time `json:"pay_deadline"`
				}
				if err := r.Decode(&or); err != nil || or.OrderID == "" || or.PayDeadline.IsZero() {
					t.Errorf("202 for %s = %v (%v), want order_id and pay_deadline", b.user, r, err)
					continue
				}
				b.orderID, b.deadline, b.accepted = or.OrderID, or.PayDeadline, time.Now()
				if pays(i) {
					payNext <- b
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(payNext)
	payers.Wait()
	return bs
}

// pay posts the payment of b's order until an answer other than 404 (or
// 503) comes back.
func (b *buyer) pay(ctx context.Context, t *testing.T, s *stack.Stack) {
	giveUp := time.Now().Add(time.Minute)
	for {
		r, err := s.Payment.Do(ctx, http.MethodPost, "/api/v1/payments/"+b.orderID, nil, nil)
		switch {
		case err != nil:
			t.Errorf("pay %s: %v", b.orderID, err)
			return
		case (r.Status == http.StatusNotFound || r.Status == http.StatusServiceUnavailable) && time.Now().Before(giveUp):
			if r.Status == http.StatusNotFound {
				b.notFound++
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		b.answered = time.Now()
		b.payable = b.answered.Sub(b.accepted)
		b.payCode, b.payError = r.Status, r.ErrorCode()
		return
	}
}

// accepted returns the buyers whose order was accepted, by order ID.
func accepted(bs []*buyer) map[string]*buyer {
	out := map[string]*buyer{}
	for _, b := range bs {
		if b != nil && b.orderID != "" {
			out[b.orderID] = b
		}
	}
	return out
}

// waitFinal polls every order until it is shipped or closed and returns its
// final status and close reason.
func waitFinal(t *testing.T, s *stack.Stack, ids []string, within time.Duration) (status, reason map[string]string) {
	t.Helper()
	status, reason = map[string]string{}, map[string]string{}
	eventually(t, within, "every order shipped or closed", func() error {
		var open []string
		for _, id := range ids {
			if st := status[id]; st == "shipped" || st == "closed" {
				continue
			}
			r, err := s.Order.Do(t.Context(), http.MethodGet, "/api/v1/orders/"+id, nil, nil)
			if err != nil {
				return err
			}
			var o struct {
				Status      string `json:"status"`
				CloseReason string `json:"close_reason"`
			}
			if r.Status != http.StatusOK || r.Decode(&o) != nil {
				return fmt.Errorf("GET order %s = %v", id, r)
			}
			status[id], reason[id] = o.Status, o.CloseReason
			if o.Status != "shipped" && o.Status != "closed" {
				open = append(open, id+"="+o.Status)
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("%d orders not final yet, e.g. %s", len(open), open[0])
		}
		return nil
	})
	return status, reason
}

// putSale creates the sale of product with stock units at salePrice, one per user.
func putSale(t *testing.T, s *stack.Stack, product string, stock int) {
	t.Helper()
	r, err := s.Inventory.Do(t.Context(), http.MethodPut, "/api/v1/products/"+product,
		http.Header{"Authorization": {"Bearer " + s.AdminToken}},
		map[string]any{"name": "peak", "price_cents": salePrice, "stock": stock, "per_user_limit": saleLimit})
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("PUT product %s = %v %v", product, r, err)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))]
}

// stockBack is, for every expired order, how long after its pay deadline
// inventory released its units (DB release and Redis give-back are one
// handler): the release time from stock_movements, the deadline from
// payments.
func stockBack(t *testing.T, s *stack.Stack, ids []string) []time.Duration {
	t.Helper()
	deadline := map[string]time.Time{}
	rows, err := s.Payment.DB.QueryContext(t.Context(), "SELECT order_id, pay_deadline FROM payments WHERE status = 'expired'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var d time.Time
		if err := rows.Scan(&id, &d); err != nil {
			t.Fatal(err)
		}
		deadline[id] = d
	}
	rows.Close()
	var out []time.Duration
	rows, err = s.Inventory.DB.QueryContext(t.Context(), "SELECT order_id, created_at FROM stock_movements WHERE kind = 'release' AND applied")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			t.Fatal(err)
		}
		if d, ok := deadline[id]; ok {
			out = append(out, at.Sub(d))
		}
	}
	return out
}

// TestPayWindowAtPeak: 4,000 units sell out in seconds while every consumer
// group takes 200 msg/s (a backlog of tens of seconds) and the pay window is
// 10 s; 80% of the buyers pay right after their 202. No accepted order
// answers 404 to its pay, no buyer answered 200 ends closed, every unpaid
// order is closed, and every database agrees (checkState and the verifier).
func TestPayWindowAtPeak(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (starts the whole system); skipped under -short")
	}
	const units = 4000
	bin := stack.Build(t)
	s := stack.Start(t, bin, stack.Options{PayTimeoutLevel: 3, ConsumeRate: 200})
	product := fmt.Sprintf("peak-%d", time.Now().UnixNano())
	putSale(t, s, product, units)

	start := time.Now()
	// As many buyers as units: the units unpaid orders give back are sold
	// again to later buyers, which would blur what is counted here.
	bs := buyAll(t, s, product, "p", units, 64, func(i int) bool { return i%5 != 0 })
	var intake time.Duration
	for _, b := range bs {
		if b != nil && b.orderID != "" {
			intake = max(intake, b.accepted.Sub(start))
		}
	}
	orders := accepted(bs)
	if len(orders) != units {
		t.Fatalf("accepted %d orders, want the %d units", len(orders), units)
	}
	var payable []time.Duration
	paid := map[string]bool{}
	notFound, late := 0, 0
	for id, b := range orders {
		notFound += b.notFound
		switch {
		case b.payCode == 0:
		case b.payCode == http.StatusOK:
			paid[id] = true
			payable = append(payable, b.payable)
		case b.payCode == http.StatusConflict && b.payError == "order_closed" && b.answered.After(b.deadline):
			late++ // answered after its deadline: the box was too busy to pay in time
		case b.payCode == http.StatusConflict && b.payError == "order_closed":
			t.Errorf("pay %s refused as order_closed at %s, before its deadline %s",
				id, b.answered.Format(time.RFC3339Nano), b.deadline.Format(time.RFC3339Nano))
		default:
			t.Errorf("pay %s right after its 202 = %d %s", id, b.payCode, b.payError)
		}
	}
	if notFound > 0 {
		t.Errorf("%d pay answers were 404 for accepted orders, want none (payable at once)", notFound)
	}
	if len(paid) == 0 {
		t.Errorf("no pay right after the 202 was answered 200 (%d late)", late)
	}
	t.Logf("intake: %d orders accepted in %s; %d paid right after, %d refused as late (answered after the deadline), time to payable p50 %s p99 %s",
		len(orders), intake.Round(time.Millisecond), len(paid), late, percentile(payable, 0.5), percentile(payable, 0.99))

	ids := make([]string, 0, len(orders))
	for id := range orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	final, reason := waitFinal(t, s, ids, 5*time.Minute)
	settled := time.Since(start)
	notKept := 0
	for _, id := range ids {
		switch {
		case paid[id] && final[id] != "shipped":
			notKept++
			t.Errorf("order %s: pay answered 200, order ended %s (%s): paid but not kept", id, final[id], reason[id])
		case !paid[id] && final[id] != "closed":
			t.Errorf("order %s: never paid, ended %s, want closed", id, final[id])
		case !paid[id] && reason[id] != events.ReasonPayTimeout:
			t.Errorf("order %s: closed with reason %q, want %q", id, reason[id], events.ReasonPayTimeout)
		}
	}
	users := map[string]string{}
	for id, b := range orders {
		users[id] = b.user
	}
	want := expectation{product: product, orders: users, paid: paid, final: final, stock: units}
	eventually(t, 2*time.Minute, "databases consistent", func() error { return checkState(t.Context(), s, want) })
	back := stockBack(t, s, ids)
	if len(back) != units-len(paid) {
		t.Errorf("releases of expired orders = %d, want %d", len(back), units-len(paid))
	}
	for svc, lines := range s.ErrorLines() {
		t.Errorf("%s logged %d lines at level ERROR, e.g.\n%s", svc, len(lines), lines[0])
	}
	t.Logf("peak of %d: %d paid and shipped, %d expired, %d paid but not kept; settled %s after the first order; "+
		"unpaid units back on sale after their deadline: p50 %s p99 %s (bounded by GID-inventory's backlog of created events)",
		units, len(paid), units-len(paid), notKept, settled.Round(time.Second),
		percentile(back, 0.5).Round(time.Millisecond), percentile(back, 0.99).Round(time.Millisecond))
}

// TestPayWindowInventoryRefusal: the database holds fewer units than Redis
// offered (a stock correction made behind the intake's back). The orders the
// database cannot cover end closed out_of_stock with their payment refunded
// (they were paid at once) and are never shipped; the others ship.
func TestPayWindowInventoryRefusal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (starts the whole system); skipped under -short")
	}
	const offered, covered = 40, 30
	bin := stack.Build(t)
	// GID-inventory at 5 msg/s: every buyer has paid (at once) before
	// inventory decides, so each refusal refunds a payment answered 200.
	s := stack.Start(t, bin, stack.Options{PayTimeoutLevel: 3, ConsumeRate: 200,
		ServiceEnv: map[string][]string{"inventory": {"CONSUME_RATE=5"}}})
	product := fmt.Sprintf("refuse-%d", time.Now().UnixNano())
	putSale(t, s, product, offered)
	if _, err := s.Inventory.DB.ExecContext(t.Context(), "UPDATE products SET stock = ? WHERE product_id = ?", covered, product); err != nil {
		t.Fatal(err)
	}
	orders := accepted(buyAll(t, s, product, "r", offered, 8, func(int) bool { return true }))
	if len(orders) != offered {
		t.Fatalf("accepted %d orders, want %d (Redis offers them all)", len(orders), offered)
	}
	ids := make([]string, 0, len(orders))
	for id, b := range orders {
		if b.payCode != http.StatusOK {
			t.Fatalf("pay %s = %d %s, want 200", id, b.payCode, b.payError)
		}
		ids = append(ids, id)
	}
	final, reason := waitFinal(t, s, ids, 2*time.Minute)
	eventually(t, time.Minute, "refusals settled", func() error {
		var p problems
		refused := 0
		for _, id := range ids {
			var pay string
			if err := s.Payment.DB.QueryRowContext(t.Context(), "SELECT status FROM payments WHERE order_id = ?", id).Scan(&pay); err != nil {
				return err
			}
			var shipments int
			if err := s.Logistics.DB.QueryRowContext(t.Context(), "SELECT COUNT(*) FROM shipments WHERE order_id = ?", id).Scan(&shipments); err != nil {
				return err
			}
			switch final[id] {
			case "shipped":
				if pay != "paid" || shipments != 1 {
					p.add("%s shipped: payment %s, %d shipments; want paid, 1", id, pay, shipments)
				}
			case "closed":
				refused++
				if reason[id] != events.ReasonOutOfStock || pay != "refunded" || shipments != 0 {
					p.add("%s closed (%s): payment %s, %d shipments; want out_of_stock, refunded, 0", id, reason[id], pay, shipments)
				}
			}
		}
		if refused != offered-covered {
			p.add("%d orders refused, want %d", refused, offered-covered)
		}
		var sold int
		if err := s.Inventory.DB.QueryRowContext(t.Context(), "SELECT sold FROM products WHERE product_id = ?", product).Scan(&sold); err != nil {
			return err
		}
		if sold != covered {
			p.add("sold %d, want %d (never more than the database holds)", sold, covered)
		}
		return p.err()
	})
	var dlq int
	for _, g := range []string{"GID-inventory", "GID-order", "GID-payment"} {
		if s.BrokerAdmin == "" {
			break
		}
		ms, err := s.DLQ(t.Context(), g)
		if err != nil {
			t.Fatal(err)
		}
		dlq += len(ms)
	}
	if dlq != 0 {
		t.Errorf("dead letters = %d, want 0 (a refusal is a business event)", dlq)
	}
}

// TestPayWindowBrokerOutage: the broker refuses every send for 60 s right
// after the buyers paid. The paid events wait in payment-service's outbox
// and arrive afterwards: every paid order ships, nothing is refunded.
func TestPayWindowBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (starts the whole system); skipped under -short")
	}
	bin := stack.Build(t)
	s := stack.Start(t, bin, stack.Options{PayTimeoutLevel: 3, ConsumeRate: 200})
	if s.BrokerAdmin == "" {
		t.Skip("needs the embedded broker's fault hooks")
	}
	product := fmt.Sprintf("outage-%d", time.Now().UnixNano())
	putSale(t, s, product, 60)
	// Orders first, so their created events and pay timeouts are in the
	// broker; then the outage begins and the buyers pay.
	orders := accepted(buyAll(t, s, product, "b", 60, 8, func(int) bool { return false }))
	time.Sleep(500 * time.Millisecond) // the outbox sender hands them on
	on, off := true, false
	if err := s.SetFaults(t.Context(), stack.Faults{RefuseSends: &on}); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	paid := map[string]bool{}
	users := map[string]string{}
	for id, b := range orders {
		users[id] = b.user
		if len(paid) < 40 {
			b.pay(t.Context(), t, s)
			if b.payCode != http.StatusOK {
				t.Fatalf("pay %s during the outage = %d %s, want 200 (the decision does not need the broker)", id, b.payCode, b.payError)
			}
			paid[id] = true
		}
	}
	time.Sleep(time.Until(outage.Add(60 * time.Second)))
	if err := s.SetFaults(t.Context(), stack.Faults{RefuseSends: &off}); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(orders))
	for id := range orders {
		ids = append(ids, id)
	}
	final, _ := waitFinal(t, s, ids, 3*time.Minute)
	want := expectation{product: product, orders: users, paid: paid, final: final, stock: 60}
	eventually(t, 2*time.Minute, "databases consistent", func() error { return checkState(t.Context(), s, want) })
	for id := range paid {
		if final[id] != "shipped" {
			t.Errorf("order %s paid during the outage ended %s, want shipped", id, final[id])
		}
	}
}
