package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"seckill/pkg/dedup"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
)

// Order statuses: created -> paid -> shipped, or created -> closed (pay
// window over, or refused by inventory); paid -> closed only when inventory
// refused the order (its payment is refunded).
const (
	StatusCreated = "created"
	StatusPaid    = "paid"
	StatusShipped = "shipped"
	StatusClosed  = "closed"
)

// ErrNotFound means the order has no row (yet).
var ErrNotFound = errors.New("order not found")

// Order is a row of the orders table.
type Order struct {
	OrderID     string `gorm:"primaryKey"`
	UserID      string
	ProductID   string
	SaleID      int64 // the inventory sale the units came from (0: unknown)
	Quantity    int
	AmountCents int64
	PayDeadline *time.Time
	Status      string
	Deducted    bool // inventory deducted its units in its database
	CloseReason string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName pins the table name.
func (Order) TableName() string { return "orders" }

// Deadline is the pay deadline (zero when unknown).
func (o Order) Deadline() time.Time {
	if o.PayDeadline == nil {
		return time.Time{}
	}
	return o.PayDeadline.UTC()
}

// Get reads the order row of orderID, or ErrNotFound.
func Get(tx *gorm.DB, orderID string) (Order, error) {
	var o Order
	err := tx.Where("order_id = ?", orderID).Take(&o).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Order{}, fmt.Errorf("order %s: %w", orderID, ErrNotFound)
	}
	if err != nil {
		return Order{}, fmt.Errorf("read order %s: %w", orderID, err)
	}
	return o, nil
}

// change is a decision on one locked order: the row as it should be after
// (nil: unchanged), the events written with it, and an error for the
// caller (errRetry: the order is not where the event needs it yet).
type change struct {
	to  *Order
	out []mq.Outgoing
	err error
}

// decision decides one locked order at now.
type decision func(o Order, now time.Time) change

// update applies the decision to the orders of ids in one transaction: it
// claims the dedup keys, locks the rows in key order (FOR UPDATE), runs
// decide on each, writes the changed rows and the events. A missing row is
// errRetry: every event but created needs the order persisted. Any error
// rolls everything back; dedup.ErrSeen when a key was claimed before.
func (h *Handler) update(ctx context.Context, claim, ids []string, decide decision) (map[string]Order, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	now := h.now().Truncate(time.Millisecond) // DATETIME(3): events carry what the row keeps
	var after map[string]Order
	wrote := false
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		after, wrote = make(map[string]Order, len(ids)), false // fn may run twice (db.Group)
		if err := dedup.Claim(tx, consumerApply, claim...); err != nil {
			return err
		}
		var rows []Order
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("order_id IN ?", ids).Order("order_id").Find(&rows).Error; err != nil {
			return fmt.Errorf("lock %d orders: %w", len(ids), err)
		}
		if len(rows) != len(ids) {
			return fmt.Errorf("%d of %d orders not persisted yet: %w", len(ids)-len(rows), len(ids), errRetry)
		}
		var out []mq.Outgoing
		var changed []Order
		for _, o := range rows {
			ch := decide(o, now)
			if ch.err != nil {
				return fmt.Errorf("order %s: %w", o.OrderID, ch.err)
			}
			after[o.OrderID] = o
			if ch.to != nil {
				ch.to.UpdatedAt = now
				after[o.OrderID] = *ch.to
				changed = append(changed, *ch.to)
			}
			out = append(out, ch.out...)
		}
		if err := save(tx, changed); err != nil {
			return err
		}
		wrote = len(out) > 0
		return outbox.Add(tx, out...)
	})
	if err != nil {
		return nil, err
	}
	if wrote {
		h.relay.Notify()
	}
	return after, nil
}

// save writes changed rows (locked by the caller): one UPDATE per distinct
// new state, usually one for a whole batch.
func save(tx *gorm.DB, rows []Order) error {
	type state struct {
		status, reason string
		deducted       bool
	}
	groups := map[state][]string{}
	var order []state
	var at time.Time
	for _, o := range rows {
		k := state{o.Status, o.CloseReason, o.Deducted}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], o.OrderID)
		at = o.UpdatedAt
	}
	slices.SortFunc(order, func(a, b state) int { return cmp.Compare(a.status+a.reason, b.status+b.reason) })
	for _, k := range order {
		ids := groups[k]
		res := tx.Model(&Order{}).Where("order_id IN ?", ids).
			Updates(map[string]any{"status": k.status, "close_reason": k.reason, "deducted": k.deducted, "updated_at": at})
		if res.Error != nil {
			return fmt.Errorf("update %d orders to %s: %w", len(ids), k.status, res.Error)
		}
		if res.RowsAffected != int64(len(ids)) {
			// Cannot happen under the row locks; never ack a change not made.
			return fmt.Errorf("update %d orders to %s: %d rows changed", len(ids), k.status, res.RowsAffected)
		}
	}
	return nil
}
