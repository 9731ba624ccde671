package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// get reads the payment of orderID.
func get(ctx context.Context, gdb *gorm.DB, orderID string) (Payment, error) {
	var p Payment
	err := gdb.WithContext(ctx).Where("order_id = ?", orderID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Payment{}, ErrNotFound
	}
	if err != nil {
		return Payment{}, fmt.Errorf("read payment %s: %w", orderID, err)
	}
	return p, nil
}

// pay moves the payment from pending to paid. won reports whether this call
// made the change; a payment that is already paid is returned with won false.
// A cancelled or refunded payment returns ErrClosed.
func pay(ctx context.Context, gdb *gorm.DB, orderID string) (p Payment, won bool, err error) {
	err = gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Model(&Payment{}).
			Where("order_id = ? AND status = ?", orderID, StatusPending).
			Updates(map[string]any{"status": StatusPaid, "updated_at": time.Now().UTC()})
		if res.Error != nil {
			return fmt.Errorf("update payment %s to paid: %w", orderID, res.Error)
		}
		won = res.RowsAffected == 1
		// In the same tx: when we won, the row stays locked until commit, so a
		// concurrent close cannot turn it into refunded before we read it.
		p, err = get(ctx, tx, orderID)
		return err
	})
	if err != nil {
		return Payment{}, false, err
	}
	switch p.Status {
	case StatusPaid:
		return p, won, nil
	case StatusCancelled, StatusRefunded:
		return p, false, ErrClosed
	default:
		panic(fmt.Sprintf("payment %s is %q right after a conditional pay", orderID, p.Status))
	}
}

// insertPending records the pending payment of a new order inside tx.
// created is false when the payment already exists (the created event was
// applied under keys the dedup table no longer holds).
func insertPending(tx *gorm.DB, orderID string, amountCents int64) (created bool, err error) {
	err = tx.Create(&Payment{OrderID: orderID, AmountCents: amountCents, Status: StatusPending}).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("insert payment %s: %w", orderID, err)
	}
	return true, nil
}

// insertPendings records the pending payments of new orders inside tx in one
// statement; a payment that exists already fails it with
// gorm.ErrDuplicatedKey.
func insertPendings(tx *gorm.DB, ps []Payment) error {
	for i := range ps {
		ps[i].Status = StatusPending
	}
	if err := tx.Create(&ps).Error; err != nil {
		return fmt.Errorf("insert %d payments from %s: %w", len(ps), ps[0].OrderID, err)
	}
	return nil
}

// closedStatus is where a payment in status from goes when its order is
// closed: pending -> cancelled, paid -> refunded; false for a payment already
// cancelled or refunded, which stays as it is.
func closedStatus(from Status) (Status, bool) {
	switch from {
	case StatusPending:
		return StatusCancelled, true
	case StatusPaid:
		return StatusRefunded, true
	default:
		return from, false
	}
}

// closePayment applies the order's close inside tx: pending -> cancelled,
// paid -> refunded; a payment already cancelled or refunded is left alone.
// It returns the status the payment ends in, whether this call changed it,
// and errNotCreated when the payment does not exist yet.
func closePayment(tx *gorm.DB, orderID string) (to Status, changed bool, err error) {
	var p Payment
	err = tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("order_id = ?", orderID).Take(&p).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", false, errNotCreated
	}
	if err != nil {
		return "", false, fmt.Errorf("lock payment %s: %w", orderID, err)
	}
	to, ok := closedStatus(p.Status)
	if !ok {
		return p.Status, false, nil
	}
	err = tx.Model(&Payment{}).Where("order_id = ? AND status = ?", orderID, p.Status).
		Updates(map[string]any{"status": to, "updated_at": time.Now().UTC()}).Error
	if err != nil {
		return "", false, fmt.Errorf("update payment %s to %s: %w", orderID, to, err)
	}
	return to, true, nil
}
