package payment

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
)

// Consumer is the name payment's claims are recorded under in consumed_messages.
const Consumer = "payment"

// change is a decision on one locked payment: the status it moves to (""
// stays), the result to count, the events written with it, and the answer
// for the caller (ErrClosed, errNotDue) — the change is made either way.
type change struct {
	to     Status
	result string
	out    []mq.Outgoing
	err    error
}

// decision decides one payment, locked, at now (the database's clock).
type decision func(p Payment, now time.Time) change

// outcome is what update did to one payment.
type outcome struct {
	Payment       // as committed
	change        // as decided
	inserted bool // the row was made by this update (from its seed)
	noRow    bool // no row and no seed: nothing decided
}

// Store is payment-service's access to its database: every transition of
// a payment is one call of update with the decision to make.
type Store struct {
	db    *gorm.DB
	tx    *db.Group // transactions of concurrent callers commit together
	relay interface{ Notify() }
}

// NewStore returns a Store on gdb; relay is woken after every commit that
// wrote events.
func NewStore(gdb *gorm.DB, relay interface{ Notify() }) *Store {
	return &Store{db: gdb, tx: db.HandlerGroup(gdb), relay: relay}
}

// lockedPayment is a payment row read under its lock, with the database's
// clock.
type lockedPayment struct {
	Payment
	DBNow time.Time `gorm:"column:db_now"`
}

// update decides the payments of ids in one transaction: it claims the
// dedup keys (none: no claim), inserts the seeds whose order has no row
// yet (an existing row keeps its status and gets only the fields it lacks:
// a created event completes a row a pay or a timeout made), locks every
// row in key order (FOR UPDATE, reading the database's clock with it), runs
// decide on each and writes each change with its events (pkg/outbox). An id
// with neither row nor seed is reported noRow, undecided. A claim seen
// before fails it with dedup.ErrSeen; any error rolls everything back.
func (s *Store) update(ctx context.Context, claim []string, seeds []Payment, ids []string, decide decision) (map[string]outcome, error) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	slices.SortFunc(seeds, func(a, b Payment) int { return cmp.Compare(a.OrderID, b.OrderID) })
	now := time.Now().UTC().Truncate(time.Microsecond) // as DATETIME(6) keeps it
	for i := range seeds {
		seeds[i].Status, seeds[i].CreatedAt, seeds[i].UpdatedAt = StatusPending, now, now
	}
	var outs map[string]outcome
	wrote := false
	err := s.tx.Transaction(ctx, func(tx *gorm.DB) error {
		outs, wrote = make(map[string]outcome, len(ids)), false // fn may run twice (db.Group)
		if len(claim) > 0 {
			if err := dedup.Claim(tx, Consumer, claim...); err != nil {
				return err
			}
		}
		if err := upsert(tx, seeds); err != nil {
			return err
		}
		var rows []lockedPayment
		if len(ids) == 0 {
			return nil
		}
		err := tx.Raw("SELECT p.*, UTC_TIMESTAMP(6) AS db_now FROM payments p WHERE order_id IN ? ORDER BY order_id FOR UPDATE", ids).
			Scan(&rows).Error
		if err != nil {
			return fmt.Errorf("lock %d payments: %w", len(ids), err)
		}
		seeded := make(map[string]time.Time, len(seeds))
		for _, sd := range seeds {
			seeded[sd.OrderID] = sd.CreatedAt
		}
		found := make(map[string]bool, len(rows))
		var out []mq.Outgoing
		moves := map[[2]Status][]string{} // from, to -> order IDs
		var now time.Time
		for _, r := range rows {
			p := r.Payment
			now = r.DBNow.UTC() // one statement: one clock for every row
			found[p.OrderID] = true
			ch := decide(p, now)
			o := outcome{Payment: p, change: ch}
			// A seed's created_at is this call's clock to the microsecond:
			// a row carrying it was inserted here.
			if at, ok := seeded[p.OrderID]; ok && p.CreatedAt.Equal(at) {
				o.inserted = true
			}
			if ch.to != "" && ch.to != p.Status {
				k := [2]Status{p.Status, ch.to}
				moves[k] = append(moves[k], p.OrderID)
				o.Status, o.UpdatedAt = ch.to, now
				if ch.to == StatusPaid {
					o.PaidAt = &now
				}
			}
			out = append(out, ch.out...)
			outs[p.OrderID] = o
		}
		if err := transition(tx, moves, now); err != nil {
			return err
		}
		for _, id := range ids {
			if !found[id] {
				outs[id] = outcome{Payment: Payment{OrderID: id}, noRow: true}
			}
		}
		wrote = len(out) > 0
		return outbox.Add(tx, out...)
	})
	if err != nil {
		return nil, err
	}
	if wrote {
		s.relay.Notify()
	}
	return outs, nil
}

// transition makes the moves (from, to -> order IDs) of locked payments:
// one UPDATE per kind of move, however many payments it holds.
func transition(tx *gorm.DB, moves map[[2]Status][]string, now time.Time) error {
	keys := slices.SortedFunc(maps.Keys(moves), func(a, b [2]Status) int {
		return cmp.Compare(string(a[0]+a[1]), string(b[0]+b[1]))
	})
	for _, k := range keys {
		from, to, ids := k[0], k[1], moves[k]
		set := map[string]any{"status": to, "updated_at": now}
		if to == StatusPaid {
			set["paid_at"] = now
		}
		res := tx.Model(&Payment{}).Where("order_id IN ? AND status = ?", ids, from).Updates(set)
		if res.Error != nil {
			return fmt.Errorf("%d payments %s -> %s: %w", len(ids), from, to, res.Error)
		}
		if res.RowsAffected != int64(len(ids)) {
			// Cannot happen under the row locks; never report a change not made.
			return fmt.Errorf("%d payments %s -> %s: %d rows changed", len(ids), from, to, res.RowsAffected)
		}
	}
	return nil
}

// upsert inserts the seeds in one statement; a row that exists keeps its
// status and values and gets only what it lacks.
func upsert(tx *gorm.DB, seeds []Payment) error {
	if len(seeds) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO payments (order_id, amount_cents, user_id, product_id, quantity, accepted_at, pay_deadline, status, created_at, updated_at) VALUES ")
	args := make([]any, 0, 10*len(seeds))
	for i, p := range seeds {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, p.OrderID, p.AmountCents, p.UserID, p.ProductID, p.Quantity, p.AcceptedAt, p.PayDeadline,
			p.Status, p.CreatedAt, p.UpdatedAt)
	}
	q.WriteString(` ON DUPLICATE KEY UPDATE
		amount_cents = IF(amount_cents = 0, VALUES(amount_cents), amount_cents),
		user_id = IF(user_id = '', VALUES(user_id), user_id),
		product_id = IF(product_id = '', VALUES(product_id), product_id),
		quantity = IF(quantity = 0, VALUES(quantity), quantity),
		accepted_at = COALESCE(accepted_at, VALUES(accepted_at)),
		pay_deadline = COALESCE(pay_deadline, VALUES(pay_deadline))`)
	if err := tx.Exec(q.String(), args...).Error; err != nil {
		return fmt.Errorf("record %d payments from %s: %w", len(seeds), seeds[0].OrderID, err)
	}
	return nil
}

// get reads the payment of orderID.
func get(ctx context.Context, gdb *gorm.DB, orderID string) (Payment, error) {
	var p Payment
	err := gdb.WithContext(ctx).Where("order_id = ?", orderID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Payment{}, fmt.Errorf("payment %s: %w", orderID, ErrNotFound)
	}
	if err != nil {
		return Payment{}, fmt.Errorf("read payment %s: %w", orderID, err)
	}
	return p, nil
}

// due lists pending payments whose deadline passed more than grace ago
// (their timeout was lost or is badly late), oldest first.
func (s *Store) due(ctx context.Context, grace time.Duration, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&Payment{}).
		Where("status = ? AND pay_deadline < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND", StatusPending, grace.Microseconds()).
		Order("pay_deadline").Limit(limit).Pluck("order_id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("list overdue payments: %w", err)
	}
	return ids, nil
}
