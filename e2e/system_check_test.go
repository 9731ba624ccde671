package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"seckill/e2e/internal/stack"
	"seckill/pkg/events"
)

// expectation is what the clients saw; checkState holds every database to it.
type expectation struct {
	product string
	orders  map[string]string // accepted order_id -> user_id
	paid    map[string]bool   // orders whose payment answered 200
	final   map[string]string // order_id -> final status seen over HTTP (shipped|closed)
	stock   int               // units of the sale (0 = saleStock)
}

// saleStock is the sale's stock the expectation is about.
func (e expectation) saleStock() int {
	if e.stock == 0 {
		return saleStock
	}
	return e.stock
}

// productReply is inventory-service's GET /api/v1/products/{id}.
type productReply struct {
	ProductID    string `json:"product_id"`
	Stock        int    `json:"stock"`
	Available    int    `json:"available"`
	Sold         int    `json:"sold"`
	PerUserLimit int    `json:"per_user_limit"`
}

// problems collects failed checks.
type problems struct{ errs []error }

func (p *problems) add(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}
func (p *problems) err() error {
	const max = 25 // the first ones tell the story
	if len(p.errs) > max {
		extra := len(p.errs) - max
		p.errs = append(p.errs[:max], fmt.Errorf("... and %d more", extra))
	}
	return errors.Join(p.errs...)
}

// checkState asserts every database, Redis and the HTTP APIs against want.
// It returns every problem found (nil when all hold).
func checkState(ctx context.Context, s *stack.Stack, want expectation) error {
	var p problems
	shipped := map[string]bool{}
	for id, st := range want.final {
		if st == "shipped" {
			shipped[id] = true
		}
	}

	// order-service: exactly one row per accepted order and none other.
	rows, err := queryRows(ctx, s.Order.DB, "SELECT order_id, user_id, product_id, quantity, amount_cents, status FROM orders")
	if err != nil {
		return err
	}
	orderStatus := map[string]string{}
	users := map[string]int{}
	for _, r := range rows {
		id := r[0]
		if _, dup := orderStatus[id]; dup {
			p.add("orders: order %s has more than one row", id)
		}
		orderStatus[id] = r[5]
		u, ok := want.orders[id]
		if !ok {
			p.add("orders: row for order %s that no client was given", id)
			continue
		}
		users[r[1]]++
		if r[1] != u || r[2] != want.product || r[3] != "1" || r[4] != fmt.Sprint(salePrice) {
			p.add("orders: %s = user %s product %s quantity %s amount %s, want %s %s 1 %d", id, r[1], r[2], r[3], r[4], u, want.product, salePrice)
		}
		if r[5] != want.final[id] {
			p.add("orders: %s status %s in the DB, %s over HTTP", id, r[5], want.final[id])
		}
	}
	for id := range want.orders {
		if _, ok := orderStatus[id]; !ok {
			p.add("orders: accepted order %s has no row", id)
		}
	}
	for u, n := range users {
		if n > saleLimit {
			p.add("orders: user %s has %d orders, limit %d", u, n, saleLimit)
		}
	}

	// inventory-service: the sale row, one deduction per order, one release per closed order.
	var stock, sold int
	err = s.Inventory.DB.QueryRowContext(ctx, "SELECT stock, sold FROM products WHERE product_id = ?", want.product).Scan(&stock, &sold)
	if err != nil {
		return fmt.Errorf("products row %s: %w", want.product, err)
	}
	if sold > stock {
		p.add("products: sold %d > stock %d (oversell)", sold, stock)
	}
	if stock != want.saleStock() || sold != len(shipped) {
		p.add("products: stock %d sold %d, want %d and %d (the paid orders; closed ones given back)", stock, sold, want.saleStock(), len(shipped))
	}
	available := stock - sold

	rows, err = queryRows(ctx, s.Inventory.DB, "SELECT order_id, kind, product_id, quantity, applied, redis_applied FROM stock_movements")
	if err != nil {
		return err
	}
	moves := map[string]map[string]int{} // order -> kind -> applied rows
	for _, r := range rows {
		id, kind := r[0], r[1]
		if _, ok := want.orders[id]; !ok {
			p.add("stock_movements: %s movement for order %s that no client was given", kind, id)
			continue
		}
		if r[2] != want.product || r[3] != "1" {
			p.add("stock_movements: %s of %s = product %s quantity %s, want %s 1", kind, id, r[2], r[3], want.product)
		}
		if r[4] != "1" {
			p.add("stock_movements: %s of %s not applied", kind, id)
		}
		if kind == events.MovementRelease && r[5] != "1" {
			p.add("stock_movements: release of %s not given back in Redis (redis_applied = %s)", id, r[5])
		}
		if moves[id] == nil {
			moves[id] = map[string]int{}
		}
		moves[id][kind]++
	}
	deducts, releases := 0, 0
	for id := range want.orders {
		m := moves[id]
		if m[events.MovementDeduct] != 1 {
			p.add("stock_movements: order %s has %d deductions, want 1", id, m[events.MovementDeduct])
		}
		wantRelease := 0
		if !shipped[id] {
			wantRelease = 1
		}
		if m[events.MovementRelease] != wantRelease {
			p.add("stock_movements: order %s (%s) has %d releases, want %d", id, want.final[id], m[events.MovementRelease], wantRelease)
		}
		deducts += m[events.MovementDeduct]
		releases += m[events.MovementRelease]
		for k := range m {
			if k != events.MovementDeduct && k != events.MovementRelease {
				p.add("stock_movements: order %s has a movement of kind %q", id, k)
			}
		}
	}
	if sold != deducts-releases {
		p.add("products.sold %d != deductions %d - releases %d", sold, deducts, releases)
	}

	// The ledger (orderly consumer) mirrors the movements, one line each.
	rows, err = queryRows(ctx, s.Inventory.DB, "SELECT order_id, kind, delta, product_id FROM stock_ledger")
	if err != nil {
		return err
	}
	ledgerSum := 0
	ledger := map[string]int{}
	for _, r := range rows {
		var d int
		fmt.Sscan(r[2], &d)
		ledgerSum += d
		ledger[r[0]+"/"+r[1]]++
		wantDelta := -1
		if r[1] == events.MovementRelease {
			wantDelta = 1
		}
		if d != wantDelta || r[3] != want.product {
			p.add("stock_ledger: %s %s delta %d product %s, want %d %s", r[1], r[0], d, r[3], wantDelta, want.product)
		}
		if moves[r[0]][r[1]] != 1 {
			p.add("stock_ledger: line %s %s without a stock movement", r[1], r[0])
		}
	}
	if len(rows) != deducts+releases {
		p.add("stock_ledger: %d lines, want %d (one per movement)", len(rows), deducts+releases)
	}
	for k, n := range ledger {
		if n != 1 {
			p.add("stock_ledger: %d lines for %s, want 1", n, k)
		}
	}
	if ledgerSum != -sold {
		p.add("stock_ledger: sum of deltas %d, want -sold = %d", ledgerSum, -sold)
	}

	// Redis agrees with the DB.
	if n, err := s.Redis.Get(ctx, events.StockKey(want.product)).Int(); err != nil || n != available {
		p.add("redis %s = %d (%v), want DB available %d", events.StockKey(want.product), n, err, available)
	}
	if available != want.saleStock()-len(shipped) {
		p.add("DB available %d, want stock - paid = %d", available, want.saleStock()-len(shipped))
	}

	// payment-service: one payment per order with the right outcome.
	rows, err = queryRows(ctx, s.Payment.DB, "SELECT order_id, amount_cents, status FROM payments")
	if err != nil {
		return err
	}
	payStatus := map[string]string{}
	for _, r := range rows {
		id := r[0]
		if _, ok := want.orders[id]; !ok {
			p.add("payments: payment for order %s that no client was given", id)
			continue
		}
		payStatus[id] = r[2]
		if r[1] != fmt.Sprint(salePrice) {
			p.add("payments: %s amount %s, want %d", id, r[1], salePrice)
		}
	}
	for id := range want.orders {
		st, ok := payStatus[id]
		var wantSt string
		switch {
		case shipped[id]:
			wantSt = "paid"
		case want.paid[id]:
			wantSt = "paid" // answered 200: never undone (checkState reports the order's own status)
		default:
			wantSt = "expired"
		}
		if !ok {
			p.add("payments: order %s has no payment", id)
		} else if st != wantSt {
			p.add("payments: order %s (%s, paid %v) payment %s, want %s", id, want.final[id], want.paid[id], st, wantSt)
		}
	}

	// logistics-service: one shipment per shipped order, none for closed ones.
	rows, err = queryRows(ctx, s.Logistics.DB, "SELECT order_id FROM shipments")
	if err != nil {
		return err
	}
	shipments := map[string]int{}
	for _, r := range rows {
		shipments[r[0]]++
	}
	for id, n := range shipments {
		if !shipped[id] {
			p.add("shipments: %d for order %s (%s), want none", n, id, want.final[id])
		} else if n != 1 {
			p.add("shipments: %d for order %s, want 1", n, id)
		}
	}
	for id := range shipped {
		if shipments[id] == 0 {
			p.add("shipments: none for shipped order %s", id)
		}
	}

	// The HTTP APIs agree with the databases.
	var pr productReply
	r, err := s.Inventory.Do(ctx, http.MethodGet, "/api/v1/products/"+want.product, nil, nil)
	if err != nil || r.Status != http.StatusOK || r.Decode(&pr) != nil {
		p.add("GET product = %v %v", r, err)
	} else if pr.Stock != stock || pr.Sold != sold || pr.Available != available {
		p.add("GET product = stock %d sold %d available %d, DB %d %d %d", pr.Stock, pr.Sold, pr.Available, stock, sold, available)
	}
	ids := make([]string, 0, len(want.orders))
	for id := range want.orders {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		var pay struct {
			Status      string `json:"status"`
			AmountCents int64  `json:"amount_cents"`
		}
		r, err := s.Payment.Do(ctx, http.MethodGet, "/api/v1/payments/"+id, nil, nil)
		if err != nil || r.Status != http.StatusOK || r.Decode(&pay) != nil {
			p.add("GET payment %s = %v %v", id, r, err)
		} else if pay.Status != payStatus[id] || pay.AmountCents != salePrice {
			p.add("GET payment %s = %s %d, DB %s %d", id, pay.Status, pay.AmountCents, payStatus[id], salePrice)
		}
		r, err = s.Logistics.Do(ctx, http.MethodGet, "/api/v1/shipments/"+id, nil, nil)
		wantCode := http.StatusNotFound
		if shipped[id] {
			wantCode = http.StatusOK
		}
		if err != nil || r.Status != wantCode {
			p.add("GET shipment %s (%s) = %v %v, want %d", id, want.final[id], r, err, wantCode)
		}
	}
	if len(p.errs) > 0 {
		return p.err()
	}
	return nil
}

// queryRows returns every row of q as strings (NULL as "").
func queryRows(ctx context.Context, db *sql.DB, q string, args ...any) ([][]string, error) {
	rs, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	defer rs.Close()
	cols, err := rs.Columns()
	if err != nil {
		return nil, err
	}
	var out [][]string
	for rs.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("%s: %w", q, err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", q, err)
	}
	return out, nil
}
