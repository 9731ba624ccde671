package stock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
)

// Consumer names under which pkg/dedup records what was consumed.
const (
	ConsumerReserve = "inventory.reserve"
	ConsumerLedger  = "inventory.ledger"
)

// Notes on a movement that was recorded without changing stock (Applied false).
const (
	NoteStaleSale      = "stale_sale"      // the order belongs to a sale that was reset since
	NoteUnknownProduct = "unknown_product" // no products row for the order's product
	NoteRefused        = "refused"         // the DB stock could not cover it (Redis and DB disagree)
	NoteNotDeducted    = "not_deducted"    // release of an order whose deduction was not applied
)

var (
	// ErrUnknownProduct: there is no products row for the ID.
	ErrUnknownProduct = errors.New("unknown product")
	// ErrNotDeducted: a close arrived before the order's deduction was
	// recorded; the caller retries later, when the created event has been consumed.
	ErrNotDeducted = errors.New("deduction not recorded yet")
	// ErrInvariant: the database contradicts itself (a bug, not a transient state).
	ErrInvariant = errors.New("stock invariant broken")
	// ErrStockRebuilding: the product's Redis stock is missing or was
	// rewritten while a give-back was prepared; the caller retries later.
	ErrStockRebuilding = errors.New("redis stock being rebuilt")
	// ErrSaleChanged: the product's sale was reset while its stock was being
	// rebuilt; the sale start wrote Redis itself.
	ErrSaleChanged = errors.New("sale reset during the stock rebuild")
)

// Product is a row of products: the truth of a product's current sale.
type Product struct {
	ProductID     string `gorm:"primaryKey"`
	Name          string
	PriceCents    int64
	Stock         int
	Sold          int
	PerUserLimit  int
	SaleID        int64
	SaleStartedAt time.Time
	UpdatedAt     time.Time
}

// Available is what is left to sell in the current sale.
func (p Product) Available() int { return p.Stock - p.Sold }

// Movement is a row of stock_movements: one deduct and one release at most per order.
type Movement struct {
	ID           int64 `gorm:"primaryKey"`
	OrderID      string
	Kind         string // events.MovementDeduct | events.MovementRelease
	ProductID    string
	UserID       string
	Quantity     int
	SaleID       int64
	Applied      bool
	Note         string
	RedisApplied bool
	CreatedAt    time.Time
}

// TableName maps Movement to stock_movements.
func (Movement) TableName() string { return "stock_movements" }

// EventID is the business key of the movement's ledger line: <order_id>:<kind>.
func (m Movement) EventID() string { return events.EventID(m.OrderID, m.Kind) }

// Delta is the change the movement made to the available stock.
func (m Movement) Delta() int {
	if m.Kind == events.MovementDeduct {
		return -m.Quantity
	}
	return m.Quantity
}

// LedgerEntry is a row of stock_ledger, written in global order.
type LedgerEntry struct {
	Seq       int64 `gorm:"primaryKey"`
	EventID   string
	OrderID   string
	ProductID string
	SaleID    int64
	Kind      string
	Delta     int
	CreatedAt time.Time
}

// TableName maps LedgerEntry to stock_ledger.
func (LedgerEntry) TableName() string { return "stock_ledger" }

// Store is inventory-service's access to its database. Every effect of a
// consumed message is written in one transaction with its dedup claim and
// the events it makes (pkg/outbox).
type Store struct {
	db *gorm.DB
	// tx commits the consumers' deductions and releases together with
	// concurrent ones (db.Group); the ledger is orderly, one at a time.
	tx    *db.Group
	relay interface{ Notify() }
	now   func() time.Time
}

// NewStore returns a Store on gdb (opened with TranslateError, see pkg/db);
// relay is woken after every commit that wrote events.
func NewStore(gdb *gorm.DB, relay interface{ Notify() }) *Store {
	return &Store{db: gdb, tx: db.HandlerGroup(gdb), relay: relay, now: func() time.Time { return time.Now().UTC() }}
}

// Sale is what an admin sets for a product's sale.
type Sale struct {
	Name         string
	PriceCents   int64
	Stock        int
	PerUserLimit int
}

// ResetSale creates the product or starts a new sale for it: sold goes back to
// 0, sale_id increases and sale_started_at is now. The warm-up that follows
// writes the new sale_id into Redis with the new stock; orders reserved
// against the older stock carry the older sale_id and no longer touch stock.
func (s *Store) ResetSale(ctx context.Context, productID string, sale Sale) (Product, error) {
	now := s.now()
	p := Product{
		ProductID: productID, Name: sale.Name, PriceCents: sale.PriceCents, Stock: sale.Stock,
		Sold: 0, PerUserLimit: sale.PerUserLimit, SaleID: 1, SaleStartedAt: now, UpdatedAt: now,
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		err := tx.Clauses(clause.OnConflict{DoUpdates: clause.Assignments(map[string]any{
			"name":            sale.Name,
			"price_cents":     sale.PriceCents,
			"sold":            0,
			"stock":           sale.Stock,
			"per_user_limit":  sale.PerUserLimit,
			"sale_id":         gorm.Expr("sale_id + 1"),
			"sale_started_at": now,
			"updated_at":      now,
		})}).Create(&p).Error
		if err != nil {
			return fmt.Errorf("upsert product %s: %w", productID, err)
		}
		return tx.Where("product_id = ?", productID).Take(&p).Error
	})
	if err != nil {
		return Product{}, err
	}
	return p, nil
}

// Product reads a product; ErrUnknownProduct when there is none.
func (s *Store) Product(ctx context.Context, productID string) (Product, error) {
	var p Product
	err := s.db.WithContext(ctx).Where("product_id = ?", productID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Product{}, fmt.Errorf("product %s: %w", productID, ErrUnknownProduct)
	}
	if err != nil {
		return Product{}, fmt.Errorf("read product %s: %w", productID, err)
	}
	return p, nil
}

// Deduction is what a created event asks for.
type Deduction struct {
	MsgID, EventID, OrderID, UserID, ProductID string
	Quantity                                   int
	// SaleID is the sale whose Redis stock the order took its units from.
	// 0 (an event from before the field): the sale is told by CreatedAt
	// against the sale's start, zero meaning "current sale".
	SaleID    int64
	CreatedAt time.Time
}

// sale is the sale d belongs to, given its product's current sale p: the
// sale_id it carries; for an event from before that field, p's sale when
// the order was created after p's start, else 0 (an older one).
func (d Deduction) sale(p Product) int64 {
	switch {
	case d.SaleID != 0:
		return d.SaleID
	case !d.CreatedAt.IsZero() && d.CreatedAt.Before(p.SaleStartedAt):
		return 0
	default:
		return p.SaleID
	}
}

// Deduct decides the created events of ds in one transaction, in their
// order, with the same result whether they come one by one or together: it
// claims every message and event ID, locks each product once, and for each
// order deducts its units from the database stock, or refuses it (an
// unknown product, an order of another sale than the current one — by the
// sale_id the reservation read from Redis, not by clocks — or fewer units
// left than Redis offered). Every decision is recorded as the order's deduct
// movement and written to the outbox with the events it makes: an applied
// deduction sends deducted and its ledger line; a refused one sends closed
// (out_of_stock), so the order is closed and its payment cancelled or
// refunded. The movements are returned in the order of ds; dedup.ErrSeen
// when one of them was consumed before (nothing changed).
func (s *Store) Deduct(ctx context.Context, ds []Deduction) ([]Movement, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	keys := make([]string, 0, 2*len(ds))
	totals := map[string]int{}
	var products []string
	for _, d := range ds {
		keys = append(keys, d.MsgID, d.EventID)
		if _, ok := totals[d.ProductID]; !ok {
			products = append(products, d.ProductID)
			totals[d.ProductID] = 0
		}
	}
	// Locked in key order (as the IN scan does) whichever order they came in.
	slices.Sort(products)
	now := s.now()
	var mvs []Movement
	err := s.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, ConsumerReserve, keys...); err != nil {
			return err
		}
		var ps []Product
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("product_id IN ?", products).Order("product_id").Find(&ps).Error
		if err != nil {
			return fmt.Errorf("lock products %v: %w", products, err)
		}
		byID := make(map[string]Product, len(ps))
		left := make(map[string]int, len(ps))
		for _, p := range ps {
			byID[p.ProductID], left[p.ProductID] = p, p.Available()
		}
		clear(totals) // fn may run twice (db.Group)
		mvs = make([]Movement, len(ds))
		out := make([]mq.Outgoing, 0, 2*len(ds))
		for i, d := range ds {
			mv := Movement{
				OrderID: d.OrderID, Kind: events.MovementDeduct, ProductID: d.ProductID, UserID: d.UserID,
				Quantity: d.Quantity, CreatedAt: now,
			}
			p, known := byID[d.ProductID]
			mv.SaleID = p.SaleID
			switch {
			case !known:
				mv.Note = NoteUnknownProduct
			case d.sale(p) != p.SaleID:
				// Reserved against another sale's Redis stock (a reset
				// came between): that stock is gone, the order is refused
				// and its movement stays in its own sale.
				mv.SaleID, mv.Note = d.sale(p), NoteStaleSale
			case left[d.ProductID] < d.Quantity:
				mv.Note = NoteRefused
			default:
				mv.Applied = true
				left[d.ProductID] -= d.Quantity
				totals[d.ProductID] += d.Quantity
			}
			mvs[i] = mv
			out = append(out, deductionEvents(mv)...)
		}
		err = tx.Create(&mvs).Error // one INSERT; an order deducted before fails it
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return fmt.Errorf("deductions of %d orders: %w", len(mvs), dedup.ErrSeen)
		}
		if err != nil {
			return fmt.Errorf("record deductions of %d orders: %w", len(mvs), err)
		}
		for _, id := range products {
			if totals[id] == 0 {
				continue
			}
			// Checked against the locked row above; the condition stays the
			// oversell guard, the CHECK constraint a second one.
			res := tx.Model(&Product{}).
				Where("product_id = ? AND sold + ? <= stock", id, totals[id]).
				Updates(map[string]any{"sold": gorm.Expr("sold + ?", totals[id]), "updated_at": now})
			if res.Error != nil {
				return fmt.Errorf("deduct %d of %s: %w", totals[id], id, res.Error)
			}
			if res.RowsAffected != 1 {
				return fmt.Errorf("deduct %d of %s: %w", totals[id], id, ErrInvariant)
			}
		}
		return outbox.Add(tx, out...)
	})
	if err != nil {
		return nil, err
	}
	s.relay.Notify()
	return mvs, nil
}

// deductionEvents are what a deduct movement announces: deducted and its
// ledger line when applied, closed (out_of_stock) when refused.
func deductionEvents(mv Movement) []mq.Outgoing {
	if !mv.Applied {
		return []mq.Outgoing{orderMessage(events.TagClosed, mv.OrderID, events.Closed(events.OrderClosed{
			OrderID: mv.OrderID, ProductID: mv.ProductID, Quantity: mv.Quantity, UserID: mv.UserID,
			Reason: events.ReasonOutOfStock, ClosedAt: mv.CreatedAt,
		}))}
	}
	return []mq.Outgoing{
		orderMessage(events.TagDeducted, mv.OrderID, events.Deducted(events.OrderDeducted{
			OrderID: mv.OrderID, ProductID: mv.ProductID, Quantity: mv.Quantity, SaleID: mv.SaleID, DeductedAt: mv.CreatedAt,
		})),
		ledgerLine(mv),
	}
}

func orderMessage(tag, orderID string, ev any) mq.Outgoing {
	return mq.Outgoing{Topic: events.TopicOrder, Tag: tag, Keys: []string{orderID}, ShardingKey: orderID, Body: events.Marshal(ev)}
}

// Release claims the message and event IDs and, in the same transaction, gives
// the order's deducted quantity back to sold and records the release movement.
// The quantity, product and sale come from the deduct movement, not from the
// event. A release of a deduction that was not applied, or that belongs to an
// older sale, is recorded with Applied false. ErrNotDeducted (nothing claimed)
// when the deduction is not recorded yet; dedup.ErrSeen when consumed before.
func (s *Store) Release(ctx context.Context, msgID, eventID, orderID string) (Movement, error) {
	var rel Movement
	err := s.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, ConsumerReserve, msgID, eventID); err != nil {
			return err
		}
		var ded Movement
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("order_id = ? AND kind = ?", orderID, events.MovementDeduct).Take(&ded).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("release order %s: %w", orderID, ErrNotDeducted)
		}
		if err != nil {
			return fmt.Errorf("read deduction of order %s: %w", orderID, err)
		}
		rel = Movement{
			OrderID: orderID, Kind: events.MovementRelease, ProductID: ded.ProductID,
			UserID: ded.UserID, Quantity: ded.Quantity, SaleID: ded.SaleID, CreatedAt: s.now(),
		}
		if !ded.Applied {
			rel.Note = NoteNotDeducted
			return createMovement(tx, &rel)
		}
		var p Product
		err = tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("product_id = ?", ded.ProductID).Take(&p).Error
		if err != nil {
			return fmt.Errorf("lock product %s: %w", ded.ProductID, err)
		}
		if p.SaleID != ded.SaleID {
			// The sale was reset since the deduction: the new sale started
			// from full stock, so there is nothing to give back.
			rel.Note = NoteStaleSale
			return createMovement(tx, &rel)
		}
		res := tx.Model(&Product{}).
			Where("product_id = ? AND sold >= ?", ded.ProductID, ded.Quantity).
			Updates(map[string]any{"sold": gorm.Expr("sold - ?", ded.Quantity), "updated_at": rel.CreatedAt})
		if res.Error != nil {
			return fmt.Errorf("release %d of %s: %w", ded.Quantity, ded.ProductID, res.Error)
		}
		if res.RowsAffected != 1 {
			// Within one sale sold always includes every applied deduction.
			return fmt.Errorf("release %d of %s: sold %d is below it: %w", ded.Quantity, ded.ProductID, p.Sold, ErrInvariant)
		}
		rel.Applied = true
		if err := createMovement(tx, &rel); err != nil {
			return err
		}
		return outbox.Add(tx, ledgerLine(rel))
	})
	if err != nil {
		return Movement{}, err
	}
	if rel.Applied {
		s.relay.Notify()
	}
	return rel, nil
}

func createMovement(tx *gorm.DB, mv *Movement) error {
	err := tx.Create(mv).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		// Same order and kind under another event ID: the effect is already there.
		return fmt.Errorf("%s of order %s: %w", mv.Kind, mv.OrderID, dedup.ErrSeen)
	}
	if err != nil {
		return fmt.Errorf("record %s of order %s: %w", mv.Kind, mv.OrderID, err)
	}
	return nil
}

// Movement reads the order's movement of kind; gorm.ErrRecordNotFound when none.
func (s *Store) Movement(ctx context.Context, orderID, kind string) (Movement, error) {
	var mv Movement
	err := s.db.WithContext(ctx).Where("order_id = ? AND kind = ?", orderID, kind).Take(&mv).Error
	if err != nil {
		return Movement{}, fmt.Errorf("read %s of order %s: %w", kind, orderID, err)
	}
	return mv, nil
}

// MarkRedisApplied records that a release was given back in Redis, so a
// redelivery long after the Redis dedup record expired cannot give it twice.
func (s *Store) MarkRedisApplied(ctx context.Context, id int64) error {
	err := s.db.WithContext(ctx).Model(&Movement{}).Where("id = ?", id).Update("redis_applied", true).Error
	if err != nil {
		return fmt.Errorf("mark movement %d given back in redis: %w", id, err)
	}
	return nil
}

// AppendLedger appends one ledger line in one statement; dedup.ErrSeen when
// the line is there already. The ledger is the system's example of the
// first way to stop duplicate consumption: a unique key in the database.
// stock_ledger.event_id is unique and a movement has one event ID, so a
// redelivery, and a line sent again after a crash, fail the INSERT and are
// acked as seen; no consumed_messages claim (and no transaction around it)
// is needed. msgID is kept for the caller's log. The sale is the line's own
// or, in a line sent without one, read from the movement the line reports
// (0 if it is unknown here).
func (s *Store) AppendLedger(ctx context.Context, msgID string, ev events.StockMovement) (LedgerEntry, error) {
	e := LedgerEntry{
		EventID: ev.EventID, OrderID: ev.OrderID, ProductID: ev.ProductID,
		SaleID: ev.SaleID, Kind: ev.Kind, Delta: ev.Delta, CreatedAt: s.now(),
	}
	db := s.db.WithContext(ctx).Session(&gorm.Session{SkipDefaultTransaction: true})
	if ev.SaleID == 0 {
		var saleIDs []int64
		err := db.Model(&Movement{}).Where("order_id = ? AND kind = ?", ev.OrderID, ev.Kind).
			Limit(1).Pluck("sale_id", &saleIDs).Error
		if err != nil {
			return LedgerEntry{}, fmt.Errorf("read sale of %s (message %s): %w", ev.EventID, msgID, err)
		}
		if len(saleIDs) == 1 {
			e.SaleID = saleIDs[0]
		}
	}
	err := db.Create(&e).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return LedgerEntry{}, fmt.Errorf("ledger %s: %w", ev.EventID, dedup.ErrSeen)
	}
	if err != nil {
		return LedgerEntry{}, fmt.Errorf("append ledger %s (message %s): %w", ev.EventID, msgID, err)
	}
	return e, nil
}

// LedgerSum is the sum of the ledger deltas of a product's sale and the
// number of lines.
func (s *Store) LedgerSum(ctx context.Context, productID string, saleID int64) (sum, lines int, err error) {
	var r struct{ Total, N int }
	err = s.db.WithContext(ctx).Model(&LedgerEntry{}).
		Select("COALESCE(SUM(delta), 0) AS total, COUNT(*) AS n").
		Where("product_id = ? AND sale_id = ?", productID, saleID).Scan(&r).Error
	if err != nil {
		return 0, 0, fmt.Errorf("sum ledger of %s sale %d: %w", productID, saleID, err)
	}
	return r.Total, r.N, nil
}

// Products reads every product: each has a sale whose copy belongs in Redis.
func (s *Store) Products(ctx context.Context) ([]Product, error) {
	var ps []Product
	if err := s.db.WithContext(ctx).Order("product_id").Find(&ps).Error; err != nil {
		return nil, fmt.Errorf("read products: %w", err)
	}
	return ps, nil
}

// RebuildState is what a product's Redis copy is rebuilt from.
type RebuildState struct {
	Product Product
	// Users maps each user to the units of the current sale deducted for
	// them and not released (users at 0 are left out).
	Users map[string]int
	// Units is the sum over every user: equal to Product.Sold unless the
	// database contradicts itself.
	Units int
	// Counted is how many releases this read found not yet given back in
	// Redis and marked as given back: the rebuilt stock includes them.
	Counted int64
}

// ReadRebuildState reads, consistently with products.sold, what the Redis copy
// of the product's sale saleID is rebuilt from, and marks the sale's applied
// releases as given back in Redis (the rebuilt stock includes them, so a
// give-back still on its way must not add them again). check runs last,
// inside the transaction: its error rolls everything back. ErrSaleChanged
// when the product's sale is no longer saleID.
func (s *Store) ReadRebuildState(ctx context.Context, productID string, saleID int64, check func(context.Context) error) (RebuildState, error) {
	var st RebuildState
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Deduct and Release change sold and write their movement while they
		// hold this lock, so the plain reads below (their snapshot is taken
		// after it) see exactly the movements sold is made of. They lock
		// nothing, and the update locks release rows by primary key only: a
		// Release waiting here (it holds its deduct row) cannot deadlock.
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("product_id = ?", productID).Take(&st.Product).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("product %s: %w", productID, ErrUnknownProduct)
		}
		if err != nil {
			return fmt.Errorf("lock product %s: %w", productID, err)
		}
		if st.Product.SaleID != saleID {
			return fmt.Errorf("product %s sale %d, rebuilding %d: %w", productID, st.Product.SaleID, saleID, ErrSaleChanged)
		}
		var units []struct {
			UserID string
			Units  int
		}
		err = tx.Model(&Movement{}).
			Select("user_id, SUM(CASE WHEN kind = ? THEN quantity ELSE -quantity END) AS units", events.MovementDeduct).
			Where("product_id = ? AND sale_id = ? AND applied", productID, saleID).
			Group("user_id").Scan(&units).Error
		if err != nil {
			return fmt.Errorf("per-user units of %s sale %d: %w", productID, saleID, err)
		}
		st.Users = make(map[string]int, len(units))
		for _, u := range units {
			st.Units += u.Units
			if u.Units > 0 {
				st.Users[u.UserID] = u.Units
			}
		}
		var ids []int64
		err = tx.Model(&Movement{}).
			Where("product_id = ? AND sale_id = ? AND kind = ? AND applied AND NOT redis_applied", productID, saleID, events.MovementRelease).
			Pluck("id", &ids).Error
		if err != nil {
			return fmt.Errorf("releases of %s sale %d: %w", productID, saleID, err)
		}
		if len(ids) > 0 {
			res := tx.Model(&Movement{}).Where("id IN ?", ids).Update("redis_applied", true)
			if res.Error != nil {
				return fmt.Errorf("mark releases of %s counted: %w", productID, res.Error)
			}
			st.Counted = res.RowsAffected
		}
		return check(ctx)
	})
	if err != nil {
		return RebuildState{}, err
	}
	return st, nil
}
