// Package verify checks, after a sale has drained, that the four databases
// and Redis agree with each other and with what the clients were told: no
// oversell, the per-user limit held, one order row per 202 and none other,
// one deduction and one payment per order, the pay window kept (paid only
// before the deadline, expired only after it), every pay answered 200 kept
// (refunded only when inventory refused the order), a shipment only for an
// order paid and deducted, every closed order's stock given back exactly
// once, and the stock ledger summing to the stock movements. Each invariant
// is a small named check over one snapshot of the stores (checks.go); every
// violation names its check and the order it concerns. The same snapshot
// gives the Outcome: what became of the orders, in numbers.
package verify

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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
	// Paid is every order_id whose pay a client saw answered 200. nil skips
	// the paid_kept check.
	Paid []string
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
	Paid       int            `json:"paid_ids"`
	Violations []Violation    `json:"violations"`
	Outcome    *Outcome       `json:"outcome"`
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
	return fmt.Sprintf("product %s sale %d: stock %d sold %d redis %d; %d orders (%s); %d accepted IDs, %d paid IDs; %d violations",
		r.ProductID, r.SaleID, r.Stock, r.Sold, r.RedisStock, r.Orders, strings.Join(st, " "), r.Accepted, r.Paid, len(r.Violations))
}

// Run reads every store once and checks every invariant of the product's
// current sale on that snapshot. An error means a store could not be read
// (no verdict); violations are in the Result.
func Run(ctx context.Context, s Stores, opts Options) (*Result, error) {
	start := time.Now()
	sl, err := read(ctx, s, opts)
	if err != nil {
		return nil, err
	}
	res := &Result{ProductID: opts.ProductID, SaleID: sl.product.saleID, Stock: sl.product.stock, Sold: sl.product.sold,
		RedisStock: sl.redisStock, Orders: len(sl.list), ByStatus: map[string]int{}, Accepted: len(sl.accepted),
		Paid: len(sl.paid), Violations: []Violation{}}
	for _, o := range sl.list {
		res.ByStatus[o.status]++
	}
	for _, c := range checks {
		c.run(sl, func(orderID, format string, args ...any) { res.add(c.name, orderID, format, args...) })
	}
	res.Outcome = outcome(sl)
	res.Took = time.Since(start)
	return res, nil
}
