package payment

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

// Consumer is the name payment's claims are recorded under in consumed_messages.
const Consumer = "payment"

// Handler applies the ORDER events payment subscribes to (created, closed).
// Each message is one transaction that claims the broker message ID and the
// event's EventID together with its effect, so a redelivery or a producer
// re-send is acked without a second effect, and a failed transaction leaves
// no claim behind.
type Handler struct {
	db      *gorm.DB
	tx      *db.Group // handler transactions, committed together with concurrent ones
	log     *slog.Logger
	metrics *Metrics
}

// NewHandler returns the handler registered as payment.apply.
func NewHandler(gdb *gorm.DB, log *slog.Logger, metrics *Metrics) *Handler {
	return &Handler{db: gdb, tx: db.HandlerGroup(gdb), log: log, metrics: metrics}
}

// Handle applies one message. nil acks; an error wrapping mq.ErrPermanent
// (malformed event, unexpected tag) is logged and, after mq.PoisonRetries,
// dead-lettered by pkg/mq; any other
// error is redelivered, including a closed event whose created event is not
// applied yet.
func (h *Handler) Handle(ctx context.Context, m mq.Message) error {
	switch m.Tag {
	case events.TagCreated:
		ev, err := decodeCreated(m)
		if err != nil {
			return err
		}
		return h.created(ctx, m, ev)
	case events.TagClosed:
		ev, err := decodeClosed(m)
		if err != nil {
			return err
		}
		return h.closed(ctx, m, ev)
	default:
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
}

// decodeCreated decodes and validates a created event.
func decodeCreated(m mq.Message) (events.OrderCreated, error) {
	var ev events.OrderCreated
	if err := decode(m, &ev, &ev.Version, &ev.EventID, &ev.OrderID); err != nil {
		return ev, err
	}
	if ev.AmountCents < 0 {
		return ev, fmt.Errorf("message %s: negative amount_cents %d: %w", m.ID, ev.AmountCents, mq.ErrPermanent)
	}
	// The same contract order-service holds the event to: an order it
	// refuses to persist must not get a payment that could be paid.
	if ev.UserID == "" || ev.ProductID == "" || ev.Quantity <= 0 {
		return ev, fmt.Errorf("message %s: missing user_id, product_id or quantity: %w", m.ID, mq.ErrPermanent)
	}
	return ev, nil
}

// decodeClosed decodes and validates a closed event.
func decodeClosed(m mq.Message) (events.OrderClosed, error) {
	var ev events.OrderClosed
	err := decode(m, &ev, &ev.Version, &ev.EventID, &ev.OrderID)
	return ev, err
}

func (h *Handler) created(ctx context.Context, m mq.Message, ev events.OrderCreated) error {
	log := h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)
	var created bool
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, Consumer, m.ID, ev.EventID); err != nil {
			return err
		}
		var err error
		created, err = insertPending(tx, ev.OrderID, ev.AmountCents)
		return err
	})
	if errors.Is(err, dedup.ErrSeen) {
		log.InfoContext(ctx, "created event already applied")
		return nil
	}
	if err != nil {
		return fmt.Errorf("apply created of order %s: %w", ev.OrderID, err)
	}
	if !created {
		log.InfoContext(ctx, "payment already exists")
		return nil
	}
	h.metrics.count(resultCreated)
	log.InfoContext(ctx, "payment pending", "amount_cents", ev.AmountCents)
	return nil
}

func (h *Handler) closed(ctx context.Context, m mq.Message, ev events.OrderClosed) error {
	log := h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)
	var (
		to      Status
		changed bool
	)
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, Consumer, m.ID, ev.EventID); err != nil {
			return err
		}
		var err error
		to, changed, err = closePayment(tx, ev.OrderID)
		return err
	})
	if errors.Is(err, dedup.ErrSeen) {
		log.InfoContext(ctx, "closed event already applied")
		return nil
	}
	if err != nil {
		// errNotCreated included: the created event is still on its way
		// (retry topic or another queue consumer), so try again later.
		return fmt.Errorf("apply closed of order %s: %w", ev.OrderID, err)
	}
	if !changed {
		log.InfoContext(ctx, "payment already closed", "status", to)
		return nil
	}
	switch to {
	case StatusCancelled:
		h.metrics.count(resultCancelled)
		log.InfoContext(ctx, "payment cancelled", "reason", ev.Reason)
	case StatusRefunded:
		h.metrics.count(resultRefunded)
		// A payment that landed on an order closed by its pay timeout.
		log.InfoContext(ctx, "payment refunded", "reason", ev.Reason)
	}
	return nil
}

// decode unmarshals m.Body into ev and checks the envelope fields every order
// event carries. Unknown JSON fields are allowed: events change by adding fields.
func decode(m mq.Message, ev any, version *int, eventID, orderID *string) error {
	if err := json.Unmarshal(m.Body, ev); err != nil {
		return fmt.Errorf("decode message %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	switch {
	case *version != events.Version:
		return fmt.Errorf("message %s: event version %d, want %d: %w", m.ID, *version, events.Version, mq.ErrPermanent)
	case *orderID == "":
		return fmt.Errorf("message %s: empty order_id: %w", m.ID, mq.ErrPermanent)
	case *eventID == "":
		return fmt.Errorf("message %s: empty event_id: %w", m.ID, mq.ErrPermanent)
	}
	return nil
}
