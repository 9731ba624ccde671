package shipment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"gorm.io/gorm"

	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
)

// Consumer is the name logistics' claims are recorded under in consumed_messages.
const Consumer = "logistics"

// Handler ships confirmed orders (handler logistics.ship): an order is
// confirmed once it is paid and its stock deducted.
type Handler struct {
	db      *gorm.DB
	tx      *db.Group // handler transactions, committed together with concurrent ones
	relay   interface{ Notify() }
	log     *slog.Logger
	metrics *Metrics
}

// NewHandler returns the handler that records shipments in gdb and writes
// their shipped events to its outbox; relay is woken after each commit.
func NewHandler(gdb *gorm.DB, relay interface{ Notify() }, log *slog.Logger, metrics *Metrics) *Handler {
	return &Handler{db: gdb, tx: db.HandlerGroup(gdb), relay: relay, log: log, metrics: metrics}
}

// Handle applies one confirmed event: one transaction claims the message ID
// and the EventID, inserts the shipment and writes its shipped event
// (pkg/outbox), so the shipment and its announcement commit together. A
// duplicate (claim taken, or the order shipped under other keys) changes
// nothing.
func (h *Handler) Handle(ctx context.Context, m mq.Message) error {
	if m.Tag != events.TagConfirmed {
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
	ev, err := events.Decode[events.OrderConfirmed](m.Body)
	if err != nil {
		return fmt.Errorf("message %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	log := h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)

	var (
		s       Shipment
		created bool
	)
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, Consumer, m.ID, ev.EventID); err != nil {
			return err
		}
		var err error
		if s, created, err = insert(ctx, tx, ev.OrderID); err != nil || !created {
			return err
		}
		return outbox.Add(tx, shippedMessage(s))
	})
	switch {
	case errors.Is(err, dedup.ErrSeen):
		log.InfoContext(ctx, "confirmed event already applied")
	case err != nil:
		return fmt.Errorf("ship order %s: %w", ev.OrderID, err)
	case created:
		h.relay.Notify()
		h.metrics.shipments.Inc()
		log.InfoContext(ctx, "shipment created", "shipment_id", s.ShipmentID)
	default:
		log.InfoContext(ctx, "shipment already exists", "shipment_id", s.ShipmentID)
	}
	return nil
}

func shippedMessage(s Shipment) mq.Outgoing {
	return mq.Outgoing{
		Topic:       events.TopicOrder,
		Tag:         events.TagShipped,
		Keys:        []string{s.OrderID},
		ShardingKey: s.OrderID, // after the order's confirmed, in the same queue
		Body: events.Marshal(events.Shipped(events.OrderShipped{
			OrderID: s.OrderID, ShipmentID: s.ShipmentID, ShippedAt: s.CreatedAt.UTC(),
		})),
	}
}
