package shipment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"gorm.io/gorm"

	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Consumer is the name logistics' claims are recorded under in consumed_messages.
const Consumer = "logistics"

// Handler ships confirmed orders (handler logistics.ship).
type Handler struct {
	db       *gorm.DB
	tx       *db.Group // handler transactions, committed together with concurrent ones
	producer *mq.Producer
	log      *slog.Logger
	metrics  *Metrics
}

// NewHandler returns the handler that records shipments in gdb and sends
// shipped events through producer.
func NewHandler(gdb *gorm.DB, producer *mq.Producer, log *slog.Logger, metrics *Metrics) *Handler {
	return &Handler{db: gdb, tx: db.HandlerGroup(gdb), producer: producer, log: log, metrics: metrics}
}

// Handle applies one confirmed event: one transaction claims the message ID
// and the EventID and inserts the shipment; after the commit the shipped event
// is sent synchronously. A duplicate (claim already taken) sends shipped
// again, because the earlier delivery may have committed and then failed to
// send; order-service applies shipped idempotently. A send error is returned,
// so the message is redelivered and the send retried.
func (h *Handler) Handle(ctx context.Context, m mq.Message) error {
	if m.Tag != events.TagConfirmed {
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
	var ev events.OrderConfirmed
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		return fmt.Errorf("decode message %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	switch {
	case ev.Version != events.Version:
		return fmt.Errorf("message %s: event version %d, want %d: %w", m.ID, ev.Version, events.Version, mq.ErrPermanent)
	case ev.OrderID == "" || ev.EventID == "":
		return fmt.Errorf("message %s: empty order_id or event_id: %w", m.ID, mq.ErrPermanent)
	}
	log := h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)

	var (
		s       Shipment
		created bool
	)
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, Consumer, m.ID, ev.EventID); err != nil {
			return err
		}
		var err error
		s, created, err = insert(ctx, tx, ev.OrderID)
		return err
	})
	switch {
	case errors.Is(err, dedup.ErrSeen):
		if s, err = Get(ctx, h.db, ev.OrderID); err != nil {
			return fmt.Errorf("re-read shipment of order %s: %w", ev.OrderID, err)
		}
		log.InfoContext(ctx, "confirmed event already applied, sending shipped again", "shipment_id", s.ShipmentID)
	case err != nil:
		return fmt.Errorf("ship order %s: %w", ev.OrderID, err)
	case created:
		h.metrics.shipments.Inc()
		log.InfoContext(ctx, "shipment created", "shipment_id", s.ShipmentID)
	default:
		log.InfoContext(ctx, "shipment already exists", "shipment_id", s.ShipmentID)
	}

	res, err := h.producer.SendSync(ctx, shippedMessage(s))
	if err != nil {
		return fmt.Errorf("send shipped of order %s: %w", ev.OrderID, err)
	}
	log.InfoContext(ctx, "shipped event sent", "shipped_msg_id", res.MsgID)
	return nil
}

func shippedMessage(s Shipment) mq.Outgoing {
	body, err := json.Marshal(events.OrderShipped{
		Version:    events.Version,
		EventID:    events.EventID(s.OrderID, events.TagShipped),
		OrderID:    s.OrderID,
		ShipmentID: s.ShipmentID,
		ShippedAt:  s.CreatedAt.UTC(),
	})
	if err != nil {
		panic(fmt.Sprintf("marshal OrderShipped: %v", err)) // plain struct: cannot fail
	}
	return mq.Outgoing{
		Topic:       events.TopicOrder,
		Tag:         events.TagShipped,
		Keys:        []string{s.OrderID},
		ShardingKey: s.OrderID, // after the order's confirmed, in the same queue
		Body:        body,
	}
}
