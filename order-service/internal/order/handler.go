// Package order persists orders and follows the decisions other services
// make about them (GID-order): payment-service decides paid or expired
// (closed), inventory-service deducted or refused (closed, out_of_stock),
// logistics shipped. An order both paid and deducted is confirmed for
// shipping, once: the confirmed event is written in the same transaction as
// the change that completes the pair (pkg/outbox). Order-service no longer
// decides anything by the position of an event in a queue.
package order

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// consumerApply is the dedup consumer name of GID-order.
const consumerApply = "GID-order"

// errRetry marks an event that arrived before the state it needs (e.g. paid
// before created was persisted); the broker redelivers it later.
var errRetry = errors.New("order not persisted yet")

// Metrics counts order status changes.
type Metrics struct {
	transitions *prometheus.CounterVec
	duplicates  *prometheus.CounterVec
}

// NewMetrics registers the order metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_status_transitions_total", Help: "Order status changes applied, by new status (and confirmed: paid and deducted).",
		}, []string{"status"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_duplicate_events_total", Help: "Events acked without effect because they were applied before.",
		}, []string{"tag"}),
	}
	reg.MustRegister(m.transitions, m.duplicates)
	return m
}

// Handler applies order events to the orders table.
type Handler struct {
	db      *gorm.DB
	tx      *db.Group // handler transactions, committed together with concurrent ones
	relay   interface{ Notify() }
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// NewHandler returns a Handler; relay is woken after a commit that wrote
// events (confirmed).
func NewHandler(gdb *gorm.DB, relay interface{ Notify() }, log *slog.Logger, m *Metrics) *Handler {
	return &Handler{db: gdb, tx: db.HandlerGroup(gdb), relay: relay, log: log, metrics: m,
		now: func() time.Time { return time.Now().UTC() }}
}

// Apply handles one message of GID-order (created, paid, deducted, closed,
// shipped). nil acks; an error wrapping mq.ErrPermanent is dead-lettered by
// pkg/mq after mq.PoisonRetries; any other error is redelivered.
func (h *Handler) Apply(ctx context.Context, m mq.Message) error {
	return dedup.ApplyOne(ctx, m, h.apply, func(ctx context.Context, m mq.Message) {
		h.metrics.duplicates.WithLabelValues(m.Tag).Inc()
		h.log.InfoContext(ctx, "event already applied", "msg_id", m.ID, "order_id", m.Keys, "tag", m.Tag)
	})
}

// ApplyBatch is the mq.BatchHandler of GID-order: the same decisions over
// every message of the batch in one transaction. A set it does not take is
// mq.ErrNoBatch; any failure rolls back and pkg/mq gives each message to
// Apply.
func (h *Handler) ApplyBatch(ctx context.Context, ms []mq.Message) error {
	if len(ms) == 0 {
		return mq.ErrNoBatch
	}
	return h.apply(ctx, ms)
}

func (h *Handler) apply(ctx context.Context, ms []mq.Message) error {
	switch tag := ms[0].Tag; tag {
	case events.TagCreated:
		return h.created(ctx, ms)
	case events.TagPaid:
		return follow(ctx, h, ms, tag, events.Decode[events.OrderPaid],
			func(e *events.OrderPaid) (string, string) { return e.EventID, e.OrderID },
			func(events.OrderPaid) decision { return paid })
	case events.TagDeducted:
		return follow(ctx, h, ms, tag, events.Decode[events.OrderDeducted],
			func(e *events.OrderDeducted) (string, string) { return e.EventID, e.OrderID },
			func(events.OrderDeducted) decision { return deducted })
	case events.TagClosed:
		return follow(ctx, h, ms, tag, events.Decode[events.OrderClosed],
			func(e *events.OrderClosed) (string, string) { return e.EventID, e.OrderID },
			func(ev events.OrderClosed) decision { return closed(ev.Reason) })
	case events.TagShipped:
		return follow(ctx, h, ms, tag, events.Decode[events.OrderShipped],
			func(e *events.OrderShipped) (string, string) { return e.EventID, e.OrderID },
			func(events.OrderShipped) decision { return shipped })
	default:
		if len(ms) > 1 {
			return mq.ErrNoBatch
		}
		return fmt.Errorf("message %s: unexpected tag %q: %w", ms[0].ID, tag, mq.ErrPermanent)
	}
}

// created persists the orders of created events: one claim, one INSERT.
func (h *Handler) created(ctx context.Context, ms []mq.Message) error {
	evs, keys, _, err := mq.Events(ms, events.TagCreated, events.Decode[events.OrderCreated],
		func(e *events.OrderCreated) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	now := h.now()
	rows := make([]Order, len(evs))
	for i, ev := range evs {
		deadline := ev.PayDeadline.UTC()
		rows[i] = Order{
			OrderID: ev.OrderID, UserID: ev.UserID, ProductID: ev.ProductID, SaleID: ev.SaleID, Quantity: ev.Quantity,
			AmountCents: ev.AmountCents, PayDeadline: &deadline, Status: StatusCreated, CreatedAt: ev.CreatedAt.UTC(), UpdatedAt: now,
		}
	}
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumerApply, keys...); err != nil {
			return err
		}
		err := tx.Create(&rows).Error // one INSERT
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			// Persisted under keys the dedup table no longer holds.
			return fmt.Errorf("order row exists: %w", dedup.ErrSeen)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("persist %d orders from %s: %w", len(ms), ms[0].ID, err)
	}
	for i, ev := range evs {
		h.metrics.transitions.WithLabelValues(StatusCreated).Inc()
		h.log.InfoContext(ctx, "order persisted", "msg_id", ms[i].ID, "event_id", ev.EventID, "order_id", ev.OrderID,
			"user_id", ev.UserID, "product_id", ev.ProductID, "status", StatusCreated, "pay_deadline", ev.PayDeadline)
	}
	return nil
}

// follow applies the events of ms (one tag) with the decision each one asks
// for, and logs what changed.
func follow[E any](ctx context.Context, h *Handler, ms []mq.Message, tag string, decode func([]byte) (E, error),
	ids func(*E) (string, string), decide func(E) decision) error {
	evs, keys, orderIDs, err := mq.Events(ms, tag, decode, ids)
	if err != nil {
		return err
	}
	byOrder := make(map[string]decision, len(evs))
	for i, ev := range evs {
		byOrder[orderIDs[i]] = decide(ev)
	}
	before := map[string]Order{}
	after, err := h.update(ctx, keys, orderIDs, func(o Order, now time.Time) change {
		before[o.OrderID] = o
		return byOrder[o.OrderID](o, now)
	})
	if err != nil {
		return fmt.Errorf("apply %d %s events from %s: %w", len(ms), tag, ms[0].ID, err)
	}
	for i, id := range orderIDs {
		b, a := before[id], after[id]
		log := h.log.With("msg_id", ms[i].ID, "order_id", id, "tag", tag, "status", a.Status)
		switch {
		case a.Status != b.Status:
			h.metrics.transitions.WithLabelValues(a.Status).Inc()
			log.InfoContext(ctx, "order "+a.Status, "from", b.Status, "close_reason", a.CloseReason)
		case a.Deducted != b.Deducted:
			log.InfoContext(ctx, "order deducted by inventory")
		default:
			log.InfoContext(ctx, "event changes nothing: order already "+a.Status, "deducted", a.Deducted)
		}
		if confirmable(a) && !confirmable(b) {
			h.metrics.transitions.WithLabelValues("confirmed").Inc()
			log.InfoContext(ctx, "order confirmed: paid and deducted")
		}
	}
	return nil
}

// confirmable: paid (or shipped) and deducted — what logistics ships.
func confirmable(o Order) bool {
	return o.Deducted && (o.Status == StatusPaid || o.Status == StatusShipped)
}

// The decisions. Each returns the row as it should be and, when the change
// makes the order paid and deducted, its confirmed event.

func paid(o Order, now time.Time) change {
	switch o.Status {
	case StatusCreated:
		o.Status = StatusPaid
		return confirmIf(o, now)
	case StatusClosed:
		// Refused by inventory before the payment reached us: payment-service
		// refunds it on the same closed event.
		return change{}
	default:
		return change{} // paid or shipped before
	}
}

func deducted(o Order, now time.Time) change {
	if o.Deducted {
		return change{}
	}
	o.Deducted = true
	return confirmIf(o, now)
}

func closed(reason string) decision {
	return func(o Order, _ time.Time) change {
		switch {
		case o.Status == StatusCreated, o.Status == StatusPaid && reason == events.ReasonOutOfStock:
			o.Status, o.CloseReason = StatusClosed, reason
			return change{to: &o}
		default:
			// Closed before, shipped, or a pay-timeout close of an order the
			// arbiter saw paid (it never sends one): nothing to undo.
			return change{}
		}
	}
}

func shipped(o Order, _ time.Time) change {
	switch o.Status {
	case StatusPaid:
		o.Status = StatusShipped
		return change{to: &o}
	case StatusCreated:
		return change{err: fmt.Errorf("shipped before paid: %w", errRetry)}
	default:
		return change{} // shipped before; or closed (logged by the caller)
	}
}

// confirmIf returns the change to o, with its confirmed event when o is now
// paid and deducted.
func confirmIf(o Order, now time.Time) change {
	ch := change{to: &o}
	if confirmable(o) {
		ch.out = append(ch.out, mq.Outgoing{
			Topic: events.TopicOrder, Tag: events.TagConfirmed, Keys: []string{o.OrderID}, ShardingKey: o.OrderID,
			Body: events.Marshal(events.Confirmed(events.OrderConfirmed{
				OrderID: o.OrderID, UserID: o.UserID, ProductID: o.ProductID, Quantity: o.Quantity, ConfirmedAt: now,
			})),
		})
	}
	return ch
}
