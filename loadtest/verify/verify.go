// Package verify checks, after a sale has drained, that the four databases
// and Redis agree with each other and with what the clients were told: no
// oversell, the per-user limit held, one order row per 202 and none other,
// one deduction, one payment and (when paid) one shipment per order, every
// closed order's stock given back exactly once, pay vs close decided once,
// and the stock ledger summing to the stock movements. Every violation names
// the order it concerns.
package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
)

// Stores are the connections the verifier reads.
type Stores struct {
	Order, Inventory, Payment, Logistics *sql.DB
	Redis                                redis.UniversalClient
}

// Options select what is checked.
type Options struct {
	// ProductID is the product whose current sale is checked.
	ProductID string
	// Accepted is every order_id a client got a 202 for (duplicates allowed).
	// nil skips the checks against the clients' view.
	Accepted []string
	// AllowUnsettled accepts orders still created or paid (not yet shipped
	// or closed), e.g. while a pay timeout is pending.
	AllowUnsettled bool
}

// Violation is one broken invariant.
type Violation struct {
	Check   string `json:"check"`
	OrderID string `json:"order_id,omitempty"`
	Detail  string `json:"detail"`
}

func (v Violation) String() string {
	if v.OrderID == "" {
		return fmt.Sprintf("%s: %s", v.Check, v.Detail)
	}
	return fmt.Sprintf("%s: order %s: %s", v.Check, v.OrderID, v.Detail)
}

// Checks that a Violation can name.
const (
	CheckOversell   = "no_oversell"
	CheckRedis      = "redis_matches_db"
	CheckUserLimit  = "per_user_limit"
	CheckAccepted   = "accepted_order_persisted"
	CheckUnknown    = "no_order_without_202"
	CheckDeduction  = "one_deduction_per_order"
	CheckPayment    = "one_payment_per_order"
	CheckShipment   = "one_shipment_per_paid_order"
	CheckRelease    = "closed_order_stock_back_once"
	CheckPayOrClose = "paid_or_closed_not_both"
	CheckLedger     = "ledger_matches_movements"
	CheckSettled    = "order_settled"
)

// Result is what Run found.
type Result struct {
	ProductID  string         `json:"product_id"`
	SaleID     int64          `json:"sale_id"`
	Stock      int            `json:"stock"`
	Sold       int            `json:"sold"`
	RedisStock int64          `json:"redis_stock"`
	Orders     int            `json:"orders"`
	ByStatus   map[string]int `json:"orders_by_status"`
	Accepted   int            `json:"accepted_ids"`
	Violations []Violation    `json:"violations"`
	Took       time.Duration  `json:"took_ns"`
}

// OK reports whether every invariant held.
func (r *Result) OK() bool { return len(r.Violations) == 0 }

func (r *Result) add(check, orderID, format string, args ...any) {
	r.Violations = append(r.Violations, Violation{Check: check, OrderID: orderID, Detail: fmt.Sprintf(format, args...)})
}

// Summary is one line with the counts and the number of violations.
func (r *Result) Summary() string {
	st := make([]string, 0, len(r.ByStatus))
	for k, n := range r.ByStatus {
		st = append(st, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(st)
	return fmt.Sprintf("product %s sale %d: stock %d sold %d redis %d; %d orders (%s); %d accepted IDs; %d violations",
		r.ProductID, r.SaleID, r.Stock, r.Sold, r.RedisStock, r.Orders, strings.Join(st, " "), r.Accepted, len(r.Violations))
}

type product struct {
	stock, sold, limit int
	saleID             int64
	startedAt          time.Time
}

type order struct {
	id, user, status string
	qty              int
	amount           int64
	created, updated time.Time
}

type movement struct {
	orderID, kind, note   string
	qty                   int
	saleID                int64
	applied, redisApplied bool
}

// Run reads every store and checks every invariant of the product's current
// sale. An error means a store could not be read (no verdict); violations are
// in the Result.
func Run(ctx context.Context, s Stores, opts Options) (*Result, error) {
	start := time.Now()
	res := &Result{ProductID: opts.ProductID, ByStatus: map[string]int{}, Violations: []Violation{}}
	var p product
	err := s.Inventory.QueryRowContext(ctx,
		"SELECT stock, sold, per_user_limit, sale_id, sale_started_at FROM products WHERE product_id = ?", opts.ProductID).
		Scan(&p.stock, &p.sold, &p.limit, &p.saleID, &p.startedAt)
	if err != nil {
		return nil, fmt.Errorf("read product %s: %w", opts.ProductID, err)
	}
	res.SaleID, res.Stock, res.Sold = p.saleID, p.stock, p.sold

	// Orders of the current sale: created (reserved) at or after its start.
	// The reservation time has millisecond precision, the sale start microseconds.
	orders := map[string]*order{}
	var list []*order
	rows, err := s.Order.QueryContext(ctx,
		"SELECT order_id, user_id, status, quantity, amount_cents, created_at, updated_at FROM orders WHERE product_id = ? AND created_at >= ?",
		opts.ProductID, p.startedAt.Truncate(time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("read orders of %s: %w", opts.ProductID, err)
	}
	for rows.Next() {
		o := &order{}
		if err := rows.Scan(&o.id, &o.user, &o.status, &o.qty, &o.amount, &o.created, &o.updated); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan orders: %w", err)
		}
		orders[o.id] = o
		list = append(list, o)
		res.ByStatus[o.status]++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read orders of %s: %w", opts.ProductID, err)
	}
	res.Orders = len(list)
	sort.Slice(list, func(i, j int) bool { return list[i].created.Before(list[j].created) })
	ids := make([]string, len(list))
	for i, o := range list {
		ids[i] = o.id
	}

	// Stock movements: of the current sale, and of any order in scope.
	moves := map[string][]movement{}
	addMove := func(m movement) { moves[m.orderID] = append(moves[m.orderID], m) }
	seenMove := map[string]bool{}
	err = queryEach(ctx, s.Inventory,
		"SELECT order_id, kind, note, quantity, sale_id, applied, redis_applied FROM stock_movements WHERE product_id = ? AND sale_id = ?",
		[]any{opts.ProductID, p.saleID}, func(sc scanner) error {
			var m movement
			if err := sc.Scan(&m.orderID, &m.kind, &m.note, &m.qty, &m.saleID, &m.applied, &m.redisApplied); err != nil {
				return err
			}
			seenMove[m.orderID+"/"+m.kind] = true
			addMove(m)
			return nil
		})
	if err != nil {
		return nil, err
	}
	err = inChunks(ctx, s.Inventory,
		"SELECT order_id, kind, note, quantity, sale_id, applied, redis_applied FROM stock_movements WHERE order_id IN (%s)",
		ids, func(sc scanner) error {
			var m movement
			if err := sc.Scan(&m.orderID, &m.kind, &m.note, &m.qty, &m.saleID, &m.applied, &m.redisApplied); err != nil {
				return err
			}
			if !seenMove[m.orderID+"/"+m.kind] {
				addMove(m)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}

	// The ledger of the current sale.
	type line struct {
		orderID, kind string
		delta         int
	}
	var ledger []line
	err = queryEach(ctx, s.Inventory,
		"SELECT order_id, kind, delta FROM stock_ledger WHERE product_id = ? AND sale_id = ?",
		[]any{opts.ProductID, p.saleID}, func(sc scanner) error {
			var l line
			if err := sc.Scan(&l.orderID, &l.kind, &l.delta); err != nil {
				return err
			}
			ledger = append(ledger, l)
			return nil
		})
	if err != nil {
		return nil, err
	}

	payments := map[string][]string{} // order -> statuses (the key makes it one at most; counted anyway)
	err = inChunks(ctx, s.Payment, "SELECT order_id, status FROM payments WHERE order_id IN (%s)", ids, func(sc scanner) error {
		var id, st string
		if err := sc.Scan(&id, &st); err != nil {
			return err
		}
		payments[id] = append(payments[id], st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	shipments := map[string]int{}
	err = inChunks(ctx, s.Logistics, "SELECT order_id FROM shipments WHERE order_id IN (%s)", ids, func(sc scanner) error {
		var id string
		if err := sc.Scan(&id); err != nil {
			return err
		}
		shipments[id]++
		return nil
	})
	if err != nil {
		return nil, err
	}

	redisStock, err := s.Redis.Get(ctx, events.StockKey(opts.ProductID)).Int64()
	if errors.Is(err, redis.Nil) {
		redisStock = -1 // reported below
	} else if err != nil {
		return nil, fmt.Errorf("redis GET %s: %w", events.StockKey(opts.ProductID), err)
	}
	res.RedisStock = redisStock
	outbox, err := s.Redis.XRange(ctx, events.OutboxStream, "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("redis XRANGE %s: %w", events.OutboxStream, err)
	}

	// --- no oversell; Redis agrees with the DB ---------------------------------
	if p.sold > p.stock {
		res.add(CheckOversell, "", "products.sold %d > stock %d", p.sold, p.stock)
	}
	kept := 0
	for _, o := range list {
		if o.status != "closed" {
			kept += o.qty
		}
	}
	if kept > p.stock {
		res.add(CheckOversell, "", "%d units in orders not closed > stock %d", kept, p.stock)
	}
	if !opts.AllowUnsettled && kept != p.sold {
		res.add(CheckOversell, "", "products.sold %d, but orders not closed hold %d units", p.sold, kept)
	}
	if want := int64(p.stock - p.sold); redisStock != want {
		res.add(CheckRedis, "", "redis %s = %d, DB available (stock %d - sold %d) = %d",
			events.StockKey(opts.ProductID), redisStock, p.stock, p.sold, want)
	}
	for _, e := range outbox {
		if e.Values["product_id"] == opts.ProductID {
			id, _ := e.Values["order_id"].(string)
			res.add(CheckRedis, id, "still in the outbox stream %s (entry %s), not handed to the broker", events.OutboxStream, e.ID)
		}
	}

	// --- per-user limit: units held at once by one user never exceed it --------
	// A closed order stops counting when it was closed (its units went back).
	if p.limit > 0 {
		byUser := map[string][]*order{}
		for _, o := range list {
			byUser[o.user] = append(byUser[o.user], o)
		}
		for _, uo := range byUser {
			if len(uo) < 2 && uo[0].qty <= p.limit {
				continue
			}
			for i, o := range uo { // sorted by created
				held := o.qty
				for _, prev := range uo[:i] {
					if prev.status != "closed" || prev.updated.After(o.created) {
						held += prev.qty
					}
				}
				if held > p.limit {
					res.add(CheckUserLimit, o.id, "user %s held %d units with this order (limit %d)", o.user, held, p.limit)
				}
			}
		}
	}

	// --- the clients' 202s vs the order DB --------------------------------------
	if opts.Accepted != nil {
		acc := map[string]bool{}
		for _, id := range opts.Accepted {
			acc[id] = true
		}
		res.Accepted = len(acc)
		var missing []string
		for id := range acc {
			if orders[id] == nil {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			// One query tells a missing row from a row of another product or sale.
			found := map[string]string{}
			err = inChunks(ctx, s.Order, "SELECT order_id, product_id FROM orders WHERE order_id IN (%s)", missing, func(sc scanner) error {
				var id, pid string
				if err := sc.Scan(&id, &pid); err != nil {
					return err
				}
				found[id] = pid
				return nil
			})
			if err != nil {
				return nil, err
			}
			slices.Sort(missing)
			for _, id := range missing {
				if pid, ok := found[id]; ok {
					res.add(CheckAccepted, id, "answered 202 but its row belongs to product %s or an older sale", pid)
				} else {
					res.add(CheckAccepted, id, "answered 202 but has no row in the order DB")
				}
			}
		}
		for _, o := range list {
			if !acc[o.id] {
				res.add(CheckUnknown, o.id, "in the order DB (user %s, %s) but no client got a 202 for it", o.user, o.status)
			}
		}
	}

	// --- per order: deduction, payment, shipment, release, pay vs close ---------
	for _, o := range list {
		ms := moves[o.id]
		var ded, rel []movement
		for _, m := range ms {
			switch m.kind {
			case events.MovementDeduct:
				ded = append(ded, m)
			case events.MovementRelease:
				rel = append(rel, m)
			default:
				res.add(CheckDeduction, o.id, "stock movement of unknown kind %q", m.kind)
			}
		}
		switch {
		case len(ded) != 1:
			res.add(CheckDeduction, o.id, "%d stock deductions, want 1", len(ded))
		case !ded[0].applied:
			res.add(CheckDeduction, o.id, "deduction recorded but not applied (note %q)", ded[0].note)
		case ded[0].saleID != p.saleID || ded[0].qty != o.qty:
			res.add(CheckDeduction, o.id, "deduction of %d in sale %d, order has %d in sale %d", ded[0].qty, ded[0].saleID, o.qty, p.saleID)
		}

		pays := payments[o.id]
		pay := ""
		if len(pays) != 1 {
			res.add(CheckPayment, o.id, "%d payment records, want 1", len(pays))
		} else {
			pay = pays[0]
		}

		switch o.status {
		case "closed":
			if shipments[o.id] != 0 {
				res.add(CheckShipment, o.id, "closed order has %d shipments, want none", shipments[o.id])
			}
			switch {
			case len(rel) != 1:
				res.add(CheckRelease, o.id, "closed order has %d stock releases, want 1", len(rel))
			case !rel[0].applied:
				res.add(CheckRelease, o.id, "closed order's release not applied (note %q)", rel[0].note)
			case !rel[0].redisApplied:
				res.add(CheckRelease, o.id, "closed order's release not given back in Redis")
			case rel[0].qty != o.qty:
				res.add(CheckRelease, o.id, "released %d, order has %d", rel[0].qty, o.qty)
			}
			if pay == "paid" {
				res.add(CheckPayOrClose, o.id, "order closed but its payment is paid (not refunded)")
			} else if pay != "" && pay != "cancelled" && pay != "refunded" && !opts.AllowUnsettled {
				res.add(CheckPayOrClose, o.id, "order closed but its payment is %s, want cancelled or refunded", pay)
			}
		case "paid", "shipped":
			if len(rel) != 0 {
				res.add(CheckRelease, o.id, "%s order has %d stock releases, want none", o.status, len(rel))
			}
			if pay != "" && pay != "paid" {
				res.add(CheckPayOrClose, o.id, "order %s but its payment is %s", o.status, pay)
			}
			if n := shipments[o.id]; n > 1 || (n == 0 && !opts.AllowUnsettled) {
				res.add(CheckShipment, o.id, "%s order has %d shipments, want 1", o.status, n)
			}
			if o.status == "paid" && !opts.AllowUnsettled {
				res.add(CheckSettled, o.id, "still paid, not shipped")
			}
		case "created":
			if len(rel) != 0 {
				res.add(CheckRelease, o.id, "open order has %d stock releases, want none", len(rel))
			}
			if shipments[o.id] != 0 {
				res.add(CheckShipment, o.id, "unpaid order has %d shipments", shipments[o.id])
			}
			if pay == "cancelled" || pay == "refunded" {
				res.add(CheckPayOrClose, o.id, "order open but its payment is %s", pay)
			}
			if !opts.AllowUnsettled {
				res.add(CheckSettled, o.id, "still created (neither shipped nor closed)")
			}
		default:
			res.add(CheckSettled, o.id, "unknown status %q", o.status)
		}
	}
	// Movements of this sale for orders the order DB does not have in it.
	var strays []string
	for id := range moves {
		if orders[id] == nil {
			strays = append(strays, id)
		}
	}
	slices.Sort(strays)
	for _, id := range strays {
		for _, m := range moves[id] {
			res.add(CheckUnknown, id, "stock %s in sale %d for an order not in the order DB's sale", m.kind, m.saleID)
		}
	}

	// --- the ledger equals the stock movements ----------------------------------
	lines := map[string]int{}
	sum := 0
	for _, l := range ledger {
		lines[l.orderID+"/"+l.kind]++
		sum += l.delta
		want := -1
		if l.kind == events.MovementRelease {
			want = 1
		}
		if o := orders[l.orderID]; o != nil {
			want *= o.qty
		}
		if l.delta != want {
			res.add(CheckLedger, l.orderID, "ledger %s delta %d, want %d", l.kind, l.delta, want)
		}
	}
	applied := 0
	covered := map[string]bool{}
	for _, id := range slices.Sorted(mapsKeys(moves)) {
		for _, m := range moves[id] {
			if m.saleID != p.saleID {
				continue
			}
			k := m.orderID + "/" + m.kind
			n := lines[k]
			switch {
			case m.applied && n != 1:
				res.add(CheckLedger, id, "applied %s has %d ledger lines, want 1", m.kind, n)
			case !m.applied && n != 0:
				res.add(CheckLedger, id, "%s not applied but has %d ledger lines", m.kind, n)
			}
			covered[k] = true
			if m.applied {
				if m.kind == events.MovementDeduct {
					applied += m.qty
				} else {
					applied -= m.qty
				}
			}
		}
	}
	for _, k := range slices.Sorted(mapsKeys(lines)) {
		if covered[k] {
			continue
		}
		id, kind, _ := strings.Cut(k, "/")
		res.add(CheckLedger, id, "%d ledger lines for %s without a stock movement", lines[k], kind)
	}
	if applied != p.sold {
		res.add(CheckLedger, "", "applied deductions - releases = %d, products.sold = %d", applied, p.sold)
	}
	if sum != -p.sold {
		res.add(CheckLedger, "", "ledger sum of deltas %d, want -sold = %d", sum, -p.sold)
	}
	res.Took = time.Since(start)
	return res, nil
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

type scanner interface{ Scan(dest ...any) error }

func queryEach(ctx context.Context, db *sql.DB, q string, args []any, f func(scanner) error) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return fmt.Errorf("scan %s: %w", q, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// inChunks runs q (with one %s for the placeholders) over ids, 500 at a time.
func inChunks(ctx context.Context, db *sql.DB, q string, ids []string, f func(scanner) error) error {
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		args := make([]any, n)
		for i := range n {
			args[i] = ids[i]
		}
		ph := strings.TrimSuffix(strings.Repeat("?,", n), ",")
		if err := queryEach(ctx, db, fmt.Sprintf(q, ph), args, f); err != nil {
			return err
		}
		ids = ids[n:]
	}
	return nil
}
