// Package events holds the message contracts of the flash-sale system: topic
// and tag names, the JSON bodies every service sends and receives, and the
// Redis key layout that order-service and inventory-service share. It is the
// one package in pkg/ with domain words; change it only by adding fields.
package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	TagDeducted  = "deducted"
)

// Close reasons of OrderClosed.
const (
	// ReasonPayTimeout: the pay window ended with the order unpaid
	// (payment-service's expiry).
	ReasonPayTimeout = "pay_timeout"
	// ReasonOutOfStock: inventory-service's database could not cover the
	// units the intake reserved in Redis (or the sale was reset); a payment
	// already taken is refunded.
	ReasonOutOfStock = "out_of_stock"
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
	// PayDeadline is fixed when the order is accepted (CreatedAt + the pay
	// window): payment-service takes the payment only before it.
	PayDeadline time.Time `json:"pay_deadline"`
	// SaleID is the sale whose Redis stock the order took its units from;
	// inventory deducts it only from that sale (0: sent before the field
	// existed, decided by CreatedAt against the sale's start).
	SaleID int64 `json:"sale_id,omitempty"`
}

// PayTimeout is the delayed message that expires the unpaid orders of one
// outbox batch at their pay deadline (tag timeout). OrderIDs lists them
// (IDs only: the message stays small, and payment-service reads an order it
// has not heard of yet from its reservation); OrderID is the first of them
// (the message's key).
type PayTimeout struct {
	Version  int      `json:"version"`
	EventID  string   `json:"event_id"`
	OrderID  string   `json:"order_id"`
	OrderIDs []string `json:"order_ids,omitempty"`
}

// OrderPaid says payment-service took the payment before the order's pay
// deadline (tag paid): the order is paid, and stays paid unless inventory
// cannot cover it (then it is closed out_of_stock and refunded).
type OrderPaid struct {
	Version     int       `json:"version"`
	EventID     string    `json:"event_id"`
	OrderID     string    `json:"order_id"`
	AmountCents int64     `json:"amount_cents"`
	PaidAt      time.Time `json:"paid_at"`
}

// OrderConfirmed says the order is paid and its stock deducted (tag
// confirmed); logistics ships only confirmed orders.
type OrderConfirmed struct {
	Version     int       `json:"version"`
	EventID     string    `json:"event_id"`
	OrderID     string    `json:"order_id"`
	UserID      string    `json:"user_id"`
	ProductID   string    `json:"product_id"`
	Quantity    int       `json:"quantity"`
	ConfirmedAt time.Time `json:"confirmed_at"`
}

// OrderClosed says an order was closed (tag closed): its pay window ended
// unpaid (ReasonPayTimeout, from payment-service: its stock goes back), or
// inventory refused it (ReasonOutOfStock, from inventory-service: a payment
// taken is refunded).
type OrderClosed struct {
	Version   int       `json:"version"`
	EventID   string    `json:"event_id"`
	OrderID   string    `json:"order_id"`
	ProductID string    `json:"product_id"`
	Quantity  int       `json:"quantity"`
	Reason    string    `json:"reason"`
	ClosedAt  time.Time `json:"closed_at"`
	UserID    string    `json:"user_id,omitempty"`
}

// OrderDeducted says inventory-service deducted the order's units in its
// database (tag deducted); with the payment it makes the order shippable.
type OrderDeducted struct {
	Version    int       `json:"version"`
	EventID    string    `json:"event_id"`
	OrderID    string    `json:"order_id"`
	ProductID  string    `json:"product_id"`
	Quantity   int       `json:"quantity"`
	SaleID     int64     `json:"sale_id"`
	DeductedAt time.Time `json:"deducted_at"`
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

// ErrMalformed is wrapped by Decode when a body is not a valid event.
// Consumers treat it as permanent: redelivering the body cannot fix it.
var ErrMalformed = errors.New("malformed event")

// maxQuantity bounds an order's units; anything above is malformed.
const maxQuantity = 10_000_000

// Decode unmarshals body into an event of type E and validates it (the
// envelope every order event carries, then E's own fields). Every consumer
// decodes through it, so a malformed event is treated the same way
// everywhere. Unknown JSON fields are allowed: events change by adding
// fields.
func Decode[E any, P interface {
	*E
	Validate() error
}](body []byte) (E, error) {
	var ev E
	if err := json.Unmarshal(body, &ev); err != nil {
		return ev, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := P(&ev).Validate(); err != nil {
		return ev, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return ev, nil
}

// Marshal encodes an event body. The events are plain structs, so it
// cannot fail.
func Marshal(ev any) []byte {
	b, err := json.Marshal(ev)
	if err != nil {
		panic(fmt.Sprintf("events: marshal %T: %v", ev, err))
	}
	return b
}

// envelope checks the fields every order event carries.
func envelope(version int, eventID, orderID string) error {
	switch {
	case version != Version:
		return fmt.Errorf("version %d, want %d", version, Version)
	case eventID == "":
		return errors.New("empty event_id")
	case orderID == "":
		return errors.New("empty order_id")
	}
	return nil
}

// units checks an order's product and quantity.
func units(productID string, qty int) error {
	switch {
	case productID == "":
		return errors.New("empty product_id")
	case qty < 1 || qty > maxQuantity:
		return fmt.Errorf("quantity %d out of 1..%d", qty, maxQuantity)
	}
	return nil
}

// Validate checks a created event: an order nobody could persist, deduct or
// pay is malformed.
func (e OrderCreated) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	if err := units(e.ProductID, e.Quantity); err != nil {
		return err
	}
	switch {
	case e.UserID == "":
		return errors.New("empty user_id")
	case e.AmountCents < 0:
		return fmt.Errorf("negative amount_cents %d", e.AmountCents)
	case e.PayDeadline.IsZero():
		return errors.New("no pay_deadline")
	}
	return nil
}

// Validate checks a timeout event and every order it carries.
func (e PayTimeout) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	if len(e.OrderIDs) == 0 {
		return errors.New("no order_ids")
	}
	if slices.Contains(e.OrderIDs, "") {
		return errors.New("empty order id in order_ids")
	}
	return nil
}

// Validate checks a paid event.
func (e OrderPaid) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	if e.AmountCents < 0 {
		return fmt.Errorf("negative amount_cents %d", e.AmountCents)
	}
	return nil
}

// Validate checks a confirmed event.
func (e OrderConfirmed) Validate() error {
	return envelope(e.Version, e.EventID, e.OrderID)
}

// Validate checks a closed event.
func (e OrderClosed) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	if err := units(e.ProductID, e.Quantity); err != nil {
		return err
	}
	switch e.Reason {
	case ReasonPayTimeout, ReasonOutOfStock:
		return nil
	default:
		return fmt.Errorf("unknown close reason %q", e.Reason)
	}
}

// Validate checks a deducted event.
func (e OrderDeducted) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	return units(e.ProductID, e.Quantity)
}

// Validate checks a shipped event.
func (e OrderShipped) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	if e.ShipmentID == "" {
		return errors.New("empty shipment_id")
	}
	return nil
}

// Validate checks a stock ledger line.
func (e StockMovement) Validate() error {
	if err := envelope(e.Version, e.EventID, e.OrderID); err != nil {
		return err
	}
	if e.ProductID == "" {
		return errors.New("empty product_id")
	}
	switch e.Kind {
	case MovementDeduct, MovementRelease:
		return nil
	default:
		return fmt.Errorf("unknown movement kind %q", e.Kind)
	}
}

// The builders below stamp an event with the schema version and its event
// ID (<order_id>:<tag>); producers and tests build events through them.

// Created stamps a created event.
func Created(e OrderCreated) OrderCreated {
	e.Version, e.EventID = Version, EventID(e.OrderID, TagCreated)
	return e
}

// Timeout is the pay-timeout event of orders, keyed by the first.
func Timeout(orderIDs []string) PayTimeout {
	e := PayTimeout{Version: Version, OrderIDs: orderIDs}
	if len(orderIDs) > 0 {
		e.OrderID = orderIDs[0]
		e.EventID = EventID(e.OrderID, TagTimeout)
	}
	return e
}

// Paid stamps a paid event.
func Paid(e OrderPaid) OrderPaid {
	e.Version, e.EventID = Version, EventID(e.OrderID, TagPaid)
	return e
}

// Closed stamps a closed event.
func Closed(e OrderClosed) OrderClosed {
	e.Version, e.EventID = Version, EventID(e.OrderID, TagClosed)
	return e
}

// Deducted stamps a deducted event.
func Deducted(e OrderDeducted) OrderDeducted {
	e.Version, e.EventID = Version, EventID(e.OrderID, TagDeducted)
	return e
}

// Confirmed stamps a confirmed event.
func Confirmed(e OrderConfirmed) OrderConfirmed {
	e.Version, e.EventID = Version, EventID(e.OrderID, TagConfirmed)
	return e
}

// Shipped stamps a shipped event.
func Shipped(e OrderShipped) OrderShipped {
	e.Version, e.EventID = Version, EventID(e.OrderID, TagShipped)
	return e
}
