// Package events holds the message contracts of the flash-sale system: topic
// and tag names, the JSON bodies every service sends and receives, and the
// Redis key layout that order-service and inventory-service share. It is the
// one package in pkg/ with domain words; change it only by adding fields.
package events

import (
	"fmt"
	"time"
)

// Version is the schema version producers stamp on every event body.
const Version = 1

// Topics.
const (
	TopicOrder       = "ORDER"        // 4 queues, partially ordered by order_id
	TopicSoldOut     = "SOLDOUT"      // 1 queue, consumed in BROADCASTING mode
	TopicStockLedger = "STOCK_LEDGER" // 1 queue, globally ordered
	TopicOrderStats  = "ORDER_STATS"  // oneway statistics, may lose messages
)

// Tags on TopicOrder.
const (
	TagCreated   = "created"
	TagTimeout   = "timeout"
	TagPaid      = "paid"
	TagConfirmed = "confirmed"
	TagClosed    = "closed"
	TagShipped   = "shipped"
)

// Tags on the other topics.
const (
	TagSoldOut  = "soldout"
	TagMovement = "movement"
	TagRejected = "rejected"
)

// EventID is the business key of an order event: one per order and tag. A
// producer that sends the same event again (after a timeout, or replaying an
// outbox) reuses it, so consumers can deduplicate on it as well as on the
// broker's message ID.
func EventID(orderID, tag string) string {
	return fmt.Sprintf("%s:%s", orderID, tag)
}

// OrderCreated is sent once per accepted order (tag created).
type OrderCreated struct {
	Version     int       `json:"version"`
	EventID     string    `json:"event_id"`
	OrderID     string    `json:"order_id"`
	UserID      string    `json:"user_id"`
	ProductID   string    `json:"product_id"`
	Quantity    int       `json:"quantity"`
	AmountCents int64     `json:"amount_cents"`
	CreatedAt   time.Time `json:"created_at"`
}

// PayTimeout is the delayed message that closes an unpaid order (tag timeout).
type PayTimeout struct {
	Version int    `json:"version"`
	EventID string `json:"event_id"`
	OrderID string `json:"order_id"`
}

// OrderPaid says the payment for an order was captured (tag paid). It does not
// yet mean the order is paid: order-service decides between pay and close.
type OrderPaid struct {
	Version     int       `json:"version"`
	EventID     string    `json:"event_id"`
	OrderID     string    `json:"order_id"`
	AmountCents int64     `json:"amount_cents"`
	PaidAt      time.Time `json:"paid_at"`
}

// OrderConfirmed says order-service moved the order to paid (tag confirmed);
// logistics ships only confirmed orders.
type OrderConfirmed struct {
	Version     int       `json:"version"`
	EventID     string    `json:"event_id"`
	OrderID     string    `json:"order_id"`
	UserID      string    `json:"user_id"`
	ProductID   string    `json:"product_id"`
	Quantity    int       `json:"quantity"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// OrderClosed says an unpaid order was closed (tag closed); its stock goes back.
type OrderClosed struct {
	Version   int       `json:"version"`
	EventID   string    `json:"event_id"`
	OrderID   string    `json:"order_id"`
	ProductID string    `json:"product_id"`
	Quantity  int       `json:"quantity"`
	Reason    string    `json:"reason"` // "pay_timeout" or "sweeper"
	ClosedAt  time.Time `json:"closed_at"`
}

// OrderShipped says logistics created the shipment (tag shipped).
type OrderShipped struct {
	Version    int       `json:"version"`
	EventID    string    `json:"event_id"`
	OrderID    string    `json:"order_id"`
	ShipmentID string    `json:"shipment_id"`
	ShippedAt  time.Time `json:"shipped_at"`
}

// SoldOut sets (true) or clears (false) the sold-out flag every order-service
// replica keeps for a product (TopicSoldOut, broadcast).
type SoldOut struct {
	Version   int       `json:"version"`
	ProductID string    `json:"product_id"`
	SoldOut   bool      `json:"sold_out"`
	At        time.Time `json:"at"`
}

// Movement kinds of a StockMovement.
const (
	MovementDeduct  = "deduct"
	MovementRelease = "release"
)

// StockMovement is one line of the stock ledger (TopicStockLedger, global order).
// Delta is negative for a deduction and positive for a release.
type StockMovement struct {
	Version   int       `json:"version"`
	EventID   string    `json:"event_id"` // <order_id>:<kind>
	OrderID   string    `json:"order_id"`
	ProductID string    `json:"product_id"`
	Kind      string    `json:"kind"`
	Delta     int       `json:"delta"`
	At        time.Time `json:"at"`
	// SaleID is the sale of the product the movement belongs to; absent (0)
	// in lines sent before the field was added.
	SaleID int64 `json:"sale_id,omitempty"`
}

// RejectedAttempt is a statistics record of an order the front door refused
// (TopicOrderStats, oneway).
type RejectedAttempt struct {
	Version   int       `json:"version"`
	ProductID string    `json:"product_id"`
	UserID    string    `json:"user_id"`
	Reason    string    `json:"reason"` // sold_out, limit_exceeded, unknown_product
	At        time.Time `json:"at"`
}
