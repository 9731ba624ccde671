package order

import (
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Order statuses.
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
	Quantity    int
	AmountCents int64
	Status      string
	CloseReason string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName pins the table name.
func (Order) TableName() string { return "orders" }

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

// transition moves orderID from status from to status to, and reports whether
// this call made the change. The WHERE on the old status is what makes pay and
// close race safely: exactly one of created→paid and created→closed wins.
func transition(tx *gorm.DB, orderID, from, to, reason string, now time.Time) (bool, error) {
	set := map[string]any{"status": to, "updated_at": now}
	if reason != "" {
		set["close_reason"] = reason
	}
	res := tx.Model(&Order{}).Where("order_id = ? AND status = ?", orderID, from).Updates(set)
	if res.Error != nil {
		return false, fmt.Errorf("order %s %s→%s: %w", orderID, from, to, res.Error)
	}
	return res.RowsAffected == 1, nil
}
