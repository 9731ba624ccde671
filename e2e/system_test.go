package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"seckill/e2e/internal/stack"
	"seckill/pkg/events"
)

// Sale of the end-to-end run.
const (
	saleStock  = 100
	salePrice  = 999
	saleLimit  = 1
	newBuyers1 = 60  // phase 1: first wave of distinct buyers (all accepted)
	dupBuyers  = 20  // of them, buyers who send the same Idempotency-Key 3 times at once
	repeaters  = 30  // phase 2: buyers of wave 1 who order again with a new key
	newBuyers3 = 300 // phase 3: second wave, competing for the rest of the stock
)

// attempt is one POST /api/v1/orders and its answer.
type attempt struct {
	user, key string
	resp      stack.Response
	err       error
}

// orderReply is the body of a 202.
type orderReply struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status"`
}

// TestSystem runs a whole flash sale through the four services, the broker,
// MariaDB and Redis, once per order send mode, then checks every database
// against what the clients saw.
func TestSystem(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test (builds and starts the whole system); skipped under -short")
	}
	bin := stack.Build(t)
	t.Log(bin)
	for _, mode := range []string{"outbox", "batch", "sync"} {
		t.Run("send_mode="+mode, func(t *testing.T) {
			// Not parallel: the stacks share the Redis database index.
			runSale(t, bin, mode)
		})
	}
}

// runSale starts the system with ORDER_SEND_MODE=mode and runs one sale.
func runSale(t *testing.T, bin *stack.Binaries, mode string) {
	started := time.Now()
	s := stack.Start(t, bin, stack.Options{
		PayTimeoutLevel: 3, // 10 s
		Env:             []string{"ORDER_SEND_MODE=" + mode},
	})
	ctx := t.Context()
	product := fmt.Sprintf("e2e-%d", time.Now().UnixNano())

	createSale(t, ctx, s, product)

	// Phase 1: a first wave of distinct buyers, some of whom send the same
	// request (same Idempotency-Key) three times at once.
	var wave []attempt
	for i := range newBuyers1 {
		u := user(i)
		n := 1
		if i < dupBuyers {
			n = 3
		}
		for range n {
			wave = append(wave, attempt{user: u, key: u + "-1"})
		}
	}
	fire(ctx, s, product, wave)
	accepted := map[string]string{} // order_id -> user
	byUser := map[string]string{}   // user -> order_id
	replays := 0
	for _, a := range wave {
		if a.err != nil || (a.resp.Status != http.StatusAccepted && a.resp.Status != http.StatusOK) {
			t.Fatalf("phase 1: POST order for %s key %s = %v %v, want 202", a.user, a.key, a.resp, a.err)
		}
		var r orderReply
		if err := a.resp.Decode(&r); err != nil || r.OrderID == "" {
			t.Fatalf("phase 1: order reply for %s: %v %v", a.user, a.resp, err)
		}
		if prev, ok := byUser[a.user]; ok {
			if prev != r.OrderID {
				t.Errorf("same Idempotency-Key %s: order_id %s and %s, want one order", a.key, prev, r.OrderID)
			}
			replays++
			continue
		}
		byUser[a.user] = r.OrderID
		accepted[r.OrderID] = a.user
	}
	if len(accepted) != newBuyers1 {
		t.Fatalf("phase 1: %d distinct orders, want %d", len(accepted), newBuyers1)
	}

	// Phase 2: buyers of wave 1 order again with a new key: over the limit.
	var again []attempt
	for i := range repeaters {
		again = append(again, attempt{user: user(i), key: user(i) + "-2"})
	}
	fire(ctx, s, product, again)
	limited := 0
	for _, a := range again {
		if a.err != nil || a.resp.Status != http.StatusConflict || a.resp.ErrorCode() != "limit_exceeded" {
			t.Errorf("phase 2: repeat order of %s = %v %v, want 409 limit_exceeded", a.user, a.resp, a.err)
			continue
		}
		limited++
	}

	// Phase 3: a second wave of new buyers (and a few repeat buyers) compete
	// for the remaining stock.
	var rush []attempt
	for i := newBuyers1; i < newBuyers1+newBuyers3; i++ {
		rush = append(rush, attempt{user: user(i), key: user(i) + "-1"})
	}
	for i := repeaters; i < repeaters+10; i++ {
		rush = append(rush, attempt{user: user(i), key: user(i) + "-3"})
	}
	fire(ctx, s, product, rush)
	soldOut := 0
	for _, a := range rush {
		switch {
		case a.err != nil:
			t.Errorf("phase 3: POST order for %s: %v", a.user, a.err)
		case a.resp.Status == http.StatusAccepted:
			var r orderReply
			if err := a.resp.Decode(&r); err != nil || r.OrderID == "" || r.Status != "pending" {
				t.Errorf("phase 3: 202 for %s = %v (%v), want order_id and status pending", a.user, a.resp, err)
				continue
			}
			if _, dup := byUser[a.user]; dup {
				t.Errorf("phase 3: %s got a second order %s (per-user limit %d)", a.user, r.OrderID, saleLimit)
				continue
			}
			if _, dup := accepted[r.OrderID]; dup {
				t.Errorf("phase 3: order_id %s returned twice", r.OrderID)
			}
			byUser[a.user] = r.OrderID
			accepted[r.OrderID] = a.user
		case a.resp.Status == http.StatusConflict && a.resp.ErrorCode() == "sold_out":
			soldOut++
		case a.resp.Status == http.StatusConflict && a.resp.ErrorCode() == "limit_exceeded" && a.key[len(a.key)-1] == '3':
			limited++
		default:
			t.Errorf("phase 3: POST order for %s = %v, want 202 or 409 sold_out", a.user, a.resp)
		}
	}
	if len(accepted) != saleStock {
		t.Fatalf("accepted orders = %d, want exactly the stock %d (no oversell, no undersell)", len(accepted), saleStock)
	}

	// Phase 4: after the sell-out.
	late := []attempt{{user: user(9001), key: "late-1"}, {user: user(9002), key: "late-2"}}
	fire(ctx, s, product, late)
	for _, a := range late {
		if a.err != nil || a.resp.Status != http.StatusConflict || a.resp.ErrorCode() != "sold_out" {
			t.Errorf("after sell-out: POST order for %s = %v %v, want 409 sold_out", a.user, a.resp, a.err)
		} else {
			soldOut++
		}
	}
	checkBadOrders(t, ctx, s, product)
	// A client retrying an accepted request after the sell-out still gets its order.
	retry := []attempt{{user: user(0), key: user(0) + "-1"}}
	fire(ctx, s, product, retry)
	var rr orderReply
	if a := retry[0]; a.err != nil || (a.resp.Status != http.StatusAccepted && a.resp.Status != http.StatusOK) ||
		a.resp.Decode(&rr) != nil || rr.OrderID != byUser[user(0)] {
		t.Errorf("retry of an accepted Idempotency-Key after sell-out = %v %v, want 202 with order_id %s", a.resp, a.err, byUser[user(0)])
	} else {
		replays++
	}
	intakeDone := time.Now()

	ids := make([]string, 0, len(accepted))
	for id := range accepted {
		ids = append(ids, id)
	}
	sort.Strings(ids)

	// Pay every other order, right away: an accepted order is payable from
	// its 202 on, whatever the consumers' backlog (never 404). The pay
	// timeout expires the rest.
	paid := map[string]bool{}
	payClosed := 0
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, id := range ids {
		if i%2 == 1 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := s.Payment.Do(ctx, http.MethodPost, "/api/v1/payments/"+id, nil, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("pay %s: %v", id, err)
			case r.Status == http.StatusOK:
				var p struct{ Status string }
				if r.Decode(&p) != nil || p.Status != "paid" {
					t.Errorf("pay %s = %v, want 200 {\"status\":\"paid\"}", id, r)
				}
				paid[id] = true
			case r.Status == http.StatusConflict && r.ErrorCode() == "order_closed":
				payClosed++
				t.Errorf("pay %s within its pay window = %v, want 200 paid", id, r)
			default:
				t.Errorf("pay %s = %v, want 200 paid", id, r)
			}
		}()
	}
	wg.Wait()
	payDone := time.Now()
	if len(paid) == 0 {
		t.Fatalf("no payment succeeded (%d answered order_closed)", payClosed)
	}

	// Every order ends shipped (paid) or closed (unpaid: expired).
	final := map[string]string{}
	eventually(t, 90*time.Second, "every order shipped or closed", func() error {
		var open []string
		for _, id := range ids {
			if st := final[id]; st == "shipped" || st == "closed" {
				continue
			}
			r, err := s.Order.Do(ctx, http.MethodGet, "/api/v1/orders/"+id, nil, nil)
			if err != nil {
				return err
			}
			var o struct{ Status string }
			if r.Status != http.StatusOK || r.Decode(&o) != nil {
				return fmt.Errorf("GET order %s = %v, want 200", id, r)
			}
			final[id] = o.Status
			if o.Status != "shipped" && o.Status != "closed" {
				open = append(open, id+"="+o.Status)
			}
		}
		if len(open) > 0 {
			return fmt.Errorf("%d orders not final yet, e.g. %s", len(open), open[0])
		}
		return nil
	})
	settled := time.Now()

	want := expectation{product: product, orders: accepted, paid: paid, final: final}
	for _, id := range ids {
		if final[id] == "shipped" && !paid[id] {
			t.Errorf("order %s shipped but never paid", id)
		}
		if paid[id] && final[id] != "shipped" {
			t.Errorf("order %s: pay answered 200, order ended %s (paid but not kept)", id, final[id])
		}
	}
	// Paying an order after its deadline is refused at once; its payment
	// stays expired (checked below) and nothing ships.
	for _, id := range ids {
		if final[id] != "closed" || paid[id] {
			continue
		}
		eventually(t, 30*time.Second, "late payment of a closed order refused", func() error {
			r, err := s.Payment.Do(ctx, http.MethodPost, "/api/v1/payments/"+id, nil, nil)
			if err != nil {
				return err
			}
			if r.Status == http.StatusOK {
				t.Fatalf("pay closed order %s = %v, want 409 order_closed", id, r)
			}
			if r.Status != http.StatusConflict || r.ErrorCode() != "order_closed" {
				// The close may not have reached payment-service yet.
				return fmt.Errorf("pay closed order %s = %v, want 409 order_closed", id, r)
			}
			return nil
		})
		break
	}

	// Downstream effects (release, cancel, shipment, ledger) follow the
	// order's status asynchronously: wait until the databases agree.
	eventually(t, 60*time.Second, "databases consistent", func() error { return checkState(ctx, s, want) })

	// The closed orders' stock is for sale again: inventory broadcast SOLDOUT
	// false, which clears every order-service replica's local flag.
	var resold string
	eventually(t, 30*time.Second, "released stock sellable again", func() error {
		a := []attempt{{user: user(9100), key: "resale"}}
		fire(ctx, s, product, a)
		if a[0].err != nil {
			return a[0].err
		}
		if a[0].resp.Status != http.StatusAccepted {
			return fmt.Errorf("POST order after %d closes = %v, want 202", saleStock-len(paid), a[0].resp)
		}
		var r orderReply
		if err := a[0].resp.Decode(&r); err != nil {
			t.Fatal(err)
		}
		resold = r.OrderID
		return nil
	})
	if n, err := s.Redis.Get(ctx, events.StockKey(product)).Int(); err != nil || n != saleStock-len(paid)-1 {
		t.Errorf("Redis stock after one more order = %d (%v), want %d", n, err, saleStock-len(paid)-1)
	}
	t.Logf("order %s accepted from the released stock", resold)

	for svc, lines := range s.ErrorLines() {
		t.Errorf("%s logged %d lines at level ERROR, e.g.\n%s", svc, len(lines), lines[0])
	}

	// The batch handlers took part through the real consumers: created events
	// in all three groups that get them, closed events in order-service and
	// payment-service. Asserted in the default outbox mode,
	// whose sender puts the created events into the broker in batches, so
	// they (and the timeouts and closes they lead to) pass each group's
	// throttle together; the per-request send modes spread them out, and
	// there the counts (often a dozen of a hundred) are only logged.
	for _, b := range []struct {
		svc        *stack.Service
		group, tag string
	}{
		{s.Order, "GID-order", "created"}, {s.Payment, "GID-payment", "created"},
		{s.Inventory, "GID-inventory", "created"}, {s.Order, "GID-order", "closed"},
		{s.Payment, "GID-payment", "closed"},
	} {
		n, err := b.svc.Metric(ctx, b.svc.Name+"_messages_batched_total",
			map[string]string{"group": b.group, "tag": b.tag, "result": "batched"})
		if err != nil {
			t.Errorf("read %s batch metric: %v", b.svc.Name, err)
		} else if n == 0 && mode == "outbox" {
			t.Errorf("%s: no %s event of %s was handled in a batch", b.svc.Name, b.tag, b.group)
		} else {
			t.Logf("%s: %.0f %s events handled in batches", b.group, n, b.tag)
		}
	}

	shipped, closed := 0, 0
	for _, id := range ids {
		if final[id] == "shipped" {
			shipped++
		} else {
			closed++
		}
	}
	buyers := map[string]bool{}
	for _, as := range [][]attempt{wave, again, rush, late, retry} {
		for _, a := range as {
			buyers[a.user] = true
		}
	}
	total := len(wave) + len(again) + len(rush) + len(late) + len(retry)
	t.Logf("summary (ORDER_SEND_MODE=%s): %d order requests (%d distinct buyers), %d accepted = stock %d, %d idempotent replays, %d limit_exceeded, %d sold_out; "+
		"%d paid (%d pay attempts answered order_closed), %d shipped, %d closed by their pay deadline; "+
		"no oversell, one deduction per order, stock back once per closed order, ledger and Redis agree with the DB",
		mode, total, len(buyers), len(accepted), saleStock, replays, limited, soldOut,
		len(paid), payClosed, shipped, closed)
	t.Logf("timing: build %s, intake done %s after start, payments %s, all final %s, checks passed %s (pay timeout level %d)",
		bin.BuildTaken.Round(time.Millisecond), intakeDone.Sub(started).Round(time.Millisecond),
		payDone.Sub(started).Round(time.Millisecond), settled.Sub(started).Round(time.Millisecond),
		time.Since(started).Round(time.Millisecond), s.Opts.PayTimeoutLevel)
	if shipped == 0 {
		t.Errorf("no order shipped although %d were paid", len(paid))
	}
}

func user(i int) string { return fmt.Sprintf("u%04d", i) }

// createSale puts the sale on inventory-service and checks the admin token.
func createSale(t *testing.T, ctx context.Context, s *stack.Stack, product string) {
	t.Helper()
	body := map[string]any{"name": "e2e sale", "price_cents": salePrice, "stock": saleStock, "per_user_limit": saleLimit}
	path := "/api/v1/products/" + product
	r, err := s.Inventory.Do(ctx, http.MethodPut, path, nil, body)
	if err != nil || r.Status != http.StatusUnauthorized {
		t.Errorf("PUT %s without token = %v %v, want 401", path, r, err)
	}
	auth := http.Header{"Authorization": {"Bearer " + s.AdminToken}}
	r, err = s.Inventory.Do(ctx, http.MethodPut, path, auth, body)
	if err != nil || r.Status/100 != 2 {
		t.Fatalf("PUT %s = %v %v, want 2xx", path, r, err)
	}
	var p productReply
	r, err = s.Inventory.Do(ctx, http.MethodGet, path, nil, nil)
	if err != nil || r.Status != http.StatusOK || r.Decode(&p) != nil {
		t.Fatalf("GET %s = %v %v, want 200", path, r, err)
	}
	if p.Stock != saleStock || p.Available != saleStock || p.Sold != 0 || p.PerUserLimit != saleLimit {
		t.Fatalf("GET %s = %+v, want stock = available = %d, sold 0, limit %d", path, p, saleStock, saleLimit)
	}
	n, err := s.Redis.Get(ctx, events.StockKey(product)).Int()
	if err != nil || n != saleStock {
		t.Fatalf("Redis %s = %d (%v) after PUT, want %d", events.StockKey(product), n, err, saleStock)
	}
}

// checkBadOrders sends requests the intake must refuse without reserving.
func checkBadOrders(t *testing.T, ctx context.Context, s *stack.Stack, product string) {
	t.Helper()
	tests := []struct {
		name   string
		body   map[string]any
		status int
		code   string
	}{
		{"unknown product", map[string]any{"user_id": "u-bad", "product_id": product + "-nope", "quantity": 1}, 404, "unknown_product"},
		{"zero quantity", map[string]any{"user_id": "u-bad", "product_id": product, "quantity": 0}, 400, "invalid_request"},
		{"missing user", map[string]any{"product_id": product, "quantity": 1}, 400, "invalid_request"},
	}
	for _, tc := range tests {
		r, err := s.Order.Do(ctx, http.MethodPost, "/api/v1/orders", nil, tc.body)
		if err != nil || r.Status != tc.status || r.ErrorCode() != tc.code {
			t.Errorf("%s: POST /api/v1/orders %v = %v %v, want %d %s", tc.name, tc.body, r, err, tc.status, tc.code)
		}
	}
}

// fire sends every attempt at once (released together) and fills in the answers.
func fire(ctx context.Context, s *stack.Stack, product string, as []attempt) {
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i := range as {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := &as[i]
			body := map[string]any{"user_id": a.user, "product_id": product, "quantity": 1}
			h := http.Header{"Idempotency-Key": {a.key}}
			<-gate
			a.resp, a.err = s.Order.Do(ctx, http.MethodPost, "/api/v1/orders", h, body)
		}()
	}
	close(gate)
	wg.Wait()
}

// eventually retries f until it returns nil or timeout passes, then fails
// the test with f's last error. It only waits; what is checked is f.
func eventually(t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := f()
		if err == nil {
			t.Logf("%s after %s", what, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		if t.Context().Err() != nil {
			t.Fatalf("%s: %v", what, t.Context().Err())
		}
		time.Sleep(300 * time.Millisecond)
	}
}
