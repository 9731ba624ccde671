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

// sale is one snapshot of a product's current sale across the stores: what
// every check reads. It is read once per Run, so the checks and the Outcome
// agree with each other.
type sale struct {
	opts       Options
	product    product
	list       []*order          // sorted by created
	orders     map[string]*order // by order_id
	moves      map[string][]movement
	ledger     []ledgerLine
	payments   map[string][]payment // order -> its rows (the key makes it one at most; counted anyway)
	shipments  map[string]int
	redisStock int64           // -1: no stock key
	outbox     []outboxEntry   // the product's entries still in the Redis outbox stream
	accepted   map[string]bool // nil: Options.Accepted not given
	missing    map[string]string
	paid       map[string]bool // nil: Options.Paid not given
}

type product struct {
	stock, sold, limit int
	saleID             int64
	startedAt          time.Time
}

type order struct {
	id, user, status, closeReason string
	qty                           int
	amount                        int64
	deducted                      bool
	payDeadline                   time.Time // zero: NULL
	created, updated              time.Time
}

// refused: closed because inventory refused its deduction.
func (o *order) refused() bool {
	return o.status == statusClosed && o.closeReason == events.ReasonOutOfStock
}

type movement struct {
	orderID, kind, note   string
	qty                   int
	saleID                int64
	applied, redisApplied bool
	created               time.Time
}

type ledgerLine struct {
	orderID, kind string
	delta         int
}

type payment struct {
	status              string
	payDeadline, paidAt time.Time // zero: NULL
	updated             time.Time
}

type outboxEntry struct{ id, orderID string }

// Order and payment statuses as the services write them.
const (
	statusCreated = "created"
	statusPaid    = "paid"
	statusShipped = "shipped"
	statusClosed  = "closed"

	payPending   = "pending"
	payPaid      = "paid"
	payExpired   = "expired"
	payCancelled = "cancelled"
	payRefunded  = "refunded"
)

// payment returns the order's one payment; false when it has none or several.
func (s *sale) payment(orderID string) (payment, bool) {
	if ps := s.payments[orderID]; len(ps) == 1 {
		return ps[0], true
	}
	return payment{}, false
}

// movementsOf splits the order's stock movements by kind.
func (s *sale) movementsOf(orderID string) (deducts, releases, other []movement) {
	for _, m := range s.moves[orderID] {
		switch m.kind {
		case events.MovementDeduct:
			deducts = append(deducts, m)
		case events.MovementRelease:
			releases = append(releases, m)
		default:
			other = append(other, m)
		}
	}
	return deducts, releases, other
}

// deductedInInventory: inventory recorded one deduction for the order and
// applied it.
func (s *sale) deductedInInventory(orderID string) bool {
	d, _, _ := s.movementsOf(orderID)
	return len(d) == 1 && d[0].applied
}

// read takes the snapshot of opts.ProductID's current sale.
func read(ctx context.Context, st Stores, opts Options) (*sale, error) {
	s := &sale{opts: opts, orders: map[string]*order{}, moves: map[string][]movement{},
		payments: map[string][]payment{}, shipments: map[string]int{}}
	p := &s.product
	err := st.Inventory.QueryRowContext(ctx,
		"SELECT stock, sold, per_user_limit, sale_id, sale_started_at FROM products WHERE product_id = ?", opts.ProductID).
		Scan(&p.stock, &p.sold, &p.limit, &p.saleID, &p.startedAt)
	if err != nil {
		return nil, fmt.Errorf("read product %s: %w", opts.ProductID, err)
	}

	// Orders of the current sale: created (reserved) at or after its start.
	// The reservation time has millisecond precision, the sale start microseconds.
	err = queryEach(ctx, st.Order,
		"SELECT order_id, user_id, status, close_reason, quantity, amount_cents, deducted, pay_deadline, created_at, updated_at FROM orders WHERE product_id = ? AND created_at >= ?",
		[]any{opts.ProductID, p.startedAt.Truncate(time.Millisecond)}, func(sc scanner) error {
			o := &order{}
			var deadline sql.NullTime
			if err := sc.Scan(&o.id, &o.user, &o.status, &o.closeReason, &o.qty, &o.amount, &o.deducted, &deadline, &o.created, &o.updated); err != nil {
				return err
			}
			o.payDeadline = deadline.Time
			s.orders[o.id] = o
			s.list = append(s.list, o)
			return nil
		})
	if err != nil {
		return nil, err
	}
	sort.Slice(s.list, func(i, j int) bool { return s.list[i].created.Before(s.list[j].created) })
	ids := make([]string, len(s.list))
	for i, o := range s.list {
		ids[i] = o.id
	}

	// Stock movements: of the current sale, and of any order in scope.
	// The second query reads again what the first read: a row of an order
	// and kind the first query had is skipped, every row of the first query
	// is kept (rows the unique key should forbid included).
	seen := map[string]bool{}
	if err := queryEach(ctx, st.Inventory, "SELECT "+movementCols+" FROM stock_movements WHERE product_id = ? AND sale_id = ?",
		[]any{opts.ProductID, p.saleID}, func(sc scanner) error {
			m, err := scanMovement(sc)
			if err != nil {
				return err
			}
			seen[m.orderID+"/"+m.kind] = true
			s.moves[m.orderID] = append(s.moves[m.orderID], m)
			return nil
		}); err != nil {
		return nil, err
	}
	if err := inChunks(ctx, st.Inventory, "SELECT "+movementCols+" FROM stock_movements WHERE order_id IN (%s)", ids, func(sc scanner) error {
		m, err := scanMovement(sc)
		if err != nil {
			return err
		}
		if !seen[m.orderID+"/"+m.kind] {
			s.moves[m.orderID] = append(s.moves[m.orderID], m)
		}
		return nil
	}); err != nil {
		return nil, err
	}

	err = queryEach(ctx, st.Inventory, "SELECT order_id, kind, delta FROM stock_ledger WHERE product_id = ? AND sale_id = ?",
		[]any{opts.ProductID, p.saleID}, func(sc scanner) error {
			var l ledgerLine
			if err := sc.Scan(&l.orderID, &l.kind, &l.delta); err != nil {
				return err
			}
			s.ledger = append(s.ledger, l)
			return nil
		})
	if err != nil {
		return nil, err
	}

	err = inChunks(ctx, st.Payment, "SELECT order_id, status, pay_deadline, paid_at, updated_at FROM payments WHERE order_id IN (%s)", ids, func(sc scanner) error {
		var id string
		var pm payment
		var deadline, paidAt sql.NullTime
		if err := sc.Scan(&id, &pm.status, &deadline, &paidAt, &pm.updated); err != nil {
			return err
		}
		pm.payDeadline, pm.paidAt = deadline.Time, paidAt.Time
		s.payments[id] = append(s.payments[id], pm)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = inChunks(ctx, st.Logistics, "SELECT order_id FROM shipments WHERE order_id IN (%s)", ids, func(sc scanner) error {
		var id string
		if err := sc.Scan(&id); err != nil {
			return err
		}
		s.shipments[id]++
		return nil
	})
	if err != nil {
		return nil, err
	}

	s.redisStock, err = st.Redis.Get(ctx, events.StockKey(opts.ProductID)).Int64()
	if errors.Is(err, redis.Nil) {
		s.redisStock = -1 // reported by redis_matches_db
	} else if err != nil {
		return nil, fmt.Errorf("redis GET %s: %w", events.StockKey(opts.ProductID), err)
	}
	outbox, err := st.Redis.XRange(ctx, events.OutboxStream, "-", "+").Result()
	if err != nil {
		return nil, fmt.Errorf("redis XRANGE %s: %w", events.OutboxStream, err)
	}
	for _, e := range outbox {
		if e.Values["product_id"] == opts.ProductID {
			id, _ := e.Values["order_id"].(string)
			s.outbox = append(s.outbox, outboxEntry{id: e.ID, orderID: id})
		}
	}

	if opts.Accepted != nil {
		s.accepted = map[string]bool{}
		for _, id := range opts.Accepted {
			s.accepted[id] = true
		}
		if err := s.readMissing(ctx, st); err != nil {
			return nil, err
		}
	}
	if opts.Paid != nil {
		s.paid = map[string]bool{}
		for _, id := range opts.Paid {
			s.paid[id] = true
		}
	}
	return s, nil
}

// readMissing finds, for each accepted ID without an order row in the
// sale, the product of its row elsewhere ("" when there is none): one query
// tells a missing row from a row of another product or an older sale.
func (s *sale) readMissing(ctx context.Context, st Stores) error {
	s.missing = map[string]string{}
	var ids []string
	for id := range s.accepted {
		if s.orders[id] == nil {
			ids = append(ids, id)
			s.missing[id] = ""
		}
	}
	slices.Sort(ids)
	return inChunks(ctx, st.Order, "SELECT order_id, product_id FROM orders WHERE order_id IN (%s)", ids, func(sc scanner) error {
		var id, pid string
		if err := sc.Scan(&id, &pid); err != nil {
			return err
		}
		s.missing[id] = pid
		return nil
	})
}

type scanner interface{ Scan(dest ...any) error }

const movementCols = "order_id, kind, note, quantity, sale_id, applied, redis_applied, created_at"

func scanMovement(sc scanner) (movement, error) {
	var m movement
	err := sc.Scan(&m.orderID, &m.kind, &m.note, &m.qty, &m.saleID, &m.applied, &m.redisApplied, &m.created)
	return m, err
}

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
