package events

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Redis keys shared by order-service (reservations) and inventory-service
// (sale warm-up and stock give-back). The product ID sits in a hash tag so a
// product's keys land in one Redis Cluster slot.

// StockKey holds the units of a product still available.
func StockKey(productID string) string { return "sk:{" + productID + "}:stock" }

// InfoKey is a hash with the product's "price" (cents), per-user "limit" and
// "sale_id": the generation of the sale whose stock the stock key holds,
// written with it (a reset writes a new one), so each reservation carries
// the sale it took its units from.
func InfoKey(productID string) string { return "sk:{" + productID + "}:info" }

// UsersKey is a hash of user ID → units that user reserved of the product.
func UsersKey(productID string) string { return "sk:{" + productID + "}:users" }

// OrderKey is the hash of a reservation (an accepted, maybe not yet persisted order).
func OrderKey(orderID string) string { return "sk:order:" + orderID }

// IdempotencyKey maps a client's Idempotency-Key to the order it created.
func IdempotencyKey(userID, key string) string { return "sk:idem:" + userID + ":" + key }

// OutboxStream is the stream of created orders not yet handed to the broker.
const OutboxStream = "sk:outbox"

// LoadedKey holds the run_id of the Redis inventory-service has checked:
// every product of its database has its info hash, and after a restart or a
// loss (another run_id, or no marker) every product's stock was dropped to be
// rebuilt from the database. While it is missing order-service reserves
// nothing ("retry later", never "unknown product"); order-service deletes a
// marker naming another run before it loads its script into a restarted
// Redis, so no order is reserved against what a restart kept.
const LoadedKey = "sk:loaded"

// Reservation is an accepted order as the reservation script records it: in
// the order hash (OrderKey) and in the outbox entry, with the same fields.
// It exists from before the buyer's 202, so payment-service reads it to take
// a payment before any consumer has seen the order.
type Reservation struct {
	OrderID     string
	UserID      string
	ProductID   string
	Quantity    int
	AmountCents int64
	CreatedAt   time.Time // acceptance
	PayDeadline time.Time // acceptance + the pay window
	// SaleID is the sale whose stock the reservation took its units from
	// (the info hash's sale_id); 0 when Redis had none.
	SaleID int64
}

// ParseReservation reads the fields the reservation script writes (times in
// Unix milliseconds).
func ParseReservation(h map[string]string) (Reservation, error) {
	qty, err1 := strconv.Atoi(h["quantity"])
	amount, err2 := strconv.ParseInt(h["amount_cents"], 10, 64)
	created, err3 := strconv.ParseInt(h["created_at"], 10, 64)
	deadline, err4 := strconv.ParseInt(h["pay_deadline"], 10, 64)
	var sale int64
	var err5 error
	if v := h["sale_id"]; v != "" { // absent from reservations made before it existed
		sale, err5 = strconv.ParseInt(v, 10, 64)
	}
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil || h["order_id"] == "" {
		return Reservation{}, fmt.Errorf("malformed reservation %v: %w", h, err)
	}
	return Reservation{
		OrderID: h["order_id"], UserID: h["user_id"], ProductID: h["product_id"], Quantity: qty,
		AmountCents: amount, CreatedAt: time.UnixMilli(created).UTC(), PayDeadline: time.UnixMilli(deadline).UTC(),
		SaleID: sale,
	}, nil
}

// Created is the created event of the reservation.
func (r Reservation) Created() OrderCreated {
	return Created(OrderCreated{
		OrderID: r.OrderID, UserID: r.UserID, ProductID: r.ProductID, Quantity: r.Quantity,
		AmountCents: r.AmountCents, CreatedAt: r.CreatedAt, PayDeadline: r.PayDeadline, SaleID: r.SaleID,
	})
}
