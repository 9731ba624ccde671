// Package order persists orders and applies their status events: the GID-order
// handler (created, paid, shipped), the GID-order-timeout handler that closes
// unpaid orders, and the sweeper that closes those whose timeout was lost.
package order

import (
	"context"
	"encoding/json"
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

// Dedup consumer names (one per consumer group).
const (
	consumerApply   = "GID-order"
	consumerTimeout = "GID-order-timeout"
)

// Close reasons.
const (
	ReasonPayTimeout = "pay_timeout"
	ReasonSweeper    = "sweeper"
)

// errRetry marks a message that arrived before the state it needs (e.g. paid
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
			Name: "order_status_transitions_total", Help: "Order status changes applied, by new status.",
		}, []string{"status"}),
		duplicates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_duplicate_events_total", Help: "Events acked without effect because they were applied before.",
		}, []string{"tag"}),
	}
	reg.MustRegister(m.transitions, m.duplicates)
	return m
}

// Handler applies order events to the orders table and sends the follow-up
// events (timeout, confirmed, closed).
type Handler struct {
	db           *gorm.DB
	tx           *db.Group // handler transactions, committed together with concurrent ones
	producer     *mq.Producer
	log          *slog.Logger
	metrics      *Metrics
	timeoutLevel int
	now          func() time.Time
}

// NewHandler returns a Handler; timeoutLevel is the RocketMQ delay level of
// the pay-timeout message (1..18).
func NewHandler(gdb *gorm.DB, producer *mq.Producer, timeoutLevel int, log *slog.Logger, m *Metrics) *Handler {
	return &Handler{db: gdb, tx: db.HandlerGroup(gdb), producer: producer, log: log, metrics: m, timeoutLevel: timeoutLevel,
		now: func() time.Time { return time.Now().UTC() }}
}

// Apply handles GID-order (tags created, paid, shipped). nil acks; an error
// wrapping mq.ErrPermanent is logged and, after mq.PoisonRetries,
// dead-lettered by pkg/mq; any other error is redelivered.
func (h *Handler) Apply(ctx context.Context, m mq.Message) error {
	switch m.Tag {
	case events.TagCreated:
		return h.created(ctx, m)
	case events.TagPaid:
		return h.paid(ctx, m)
	case events.TagShipped:
		return h.shipped(ctx, m)
	default:
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
}

// unmarshal decodes m's body into an event of type T and checks the fields
// every order event carries (get returns them); a failure is permanent:
// retrying cannot fix the body. A missing event_id defaults to <order_id>:<tag>.
func unmarshal[T any](m mq.Message, get func(*T) (version int, eventID *string, orderID string)) (T, error) {
	var ev T
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		return ev, fmt.Errorf("decode %s %s: %w: %w", m.Tag, m.ID, mq.ErrPermanent, err)
	}
	version, eventID, orderID := get(&ev)
	if version != events.Version {
		return ev, fmt.Errorf("decode %s %s: version %d, want %d: %w", m.Tag, m.ID, version, events.Version, mq.ErrPermanent)
	}
	if orderID == "" {
		return ev, fmt.Errorf("decode %s %s: empty order_id: %w", m.Tag, m.ID, mq.ErrPermanent)
	}
	if *eventID == "" {
		*eventID = events.EventID(orderID, m.Tag)
	}
	return ev, nil
}

// decodeCreated decodes and validates a created event.
func decodeCreated(m mq.Message) (events.OrderCreated, error) {
	ev, err := unmarshal(m, func(e *events.OrderCreated) (int, *string, string) { return e.Version, &e.EventID, e.OrderID })
	if err != nil {
		return ev, err
	}
	if ev.UserID == "" || ev.ProductID == "" || ev.Quantity < 1 {
		return ev, fmt.Errorf("decode created %s: missing user_id, product_id or quantity: %w", m.ID, mq.ErrPermanent)
	}
	return ev, nil
}

// newOrder is the row a created event makes.
func newOrder(ev events.OrderCreated, now time.Time) Order {
	created := ev.CreatedAt.UTC()
	if created.IsZero() {
		created = now
	}
	return Order{
		OrderID: ev.OrderID, UserID: ev.UserID, ProductID: ev.ProductID, Quantity: ev.Quantity,
		AmountCents: ev.AmountCents, Status: StatusCreated, CreatedAt: created, UpdatedAt: now,
	}
}

// createdLog is the logger of a created event's lines, alone or in a batch.
func (h *Handler) createdLog(m mq.Message, ev events.OrderCreated) *slog.Logger {
	return h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID,
		"user_id", ev.UserID, "product_id", ev.ProductID)
}

func (h *Handler) created(ctx context.Context, m mq.Message) error {
	ev, err := decodeCreated(m)
	if err != nil {
		return err
	}
	log := h.createdLog(m, ev)
	o := newOrder(ev, h.now())
	errExists := errors.New("order row exists")
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumerApply, m.ID, ev.EventID); err != nil {
			return err
		}
		err := tx.Create(&o).Error
		if errors.Is(err, gorm.ErrDuplicatedKey) {
			return errExists
		}
		return err
	})
	switch {
	case errors.Is(err, dedup.ErrSeen), errors.Is(err, errExists):
		h.metrics.duplicates.WithLabelValues(m.Tag).Inc()
		log.InfoContext(ctx, "order already persisted; sending its timeout again")
	case err != nil:
		return fmt.Errorf("persist order %s: %w", ev.OrderID, err)
	default:
		h.metrics.transitions.WithLabelValues(StatusCreated).Inc()
		log.InfoContext(ctx, "order persisted", "status", StatusCreated)
	}
	// Also after a duplicate: the previous attempt may have crashed between
	// commit and this send. A second timeout message is harmless.
	return h.sendTimeout(ctx, ev.OrderID)
}

func (h *Handler) sendTimeout(ctx context.Context, orderID string) error {
	body, err := json.Marshal(events.PayTimeout{
		Version: events.Version, EventID: events.EventID(orderID, events.TagTimeout), OrderID: orderID,
	})
	if err != nil {
		return fmt.Errorf("encode timeout of %s: %w", orderID, err)
	}
	_, err = h.producer.SendSync(ctx, mq.Outgoing{
		Topic: events.TopicOrder, Tag: events.TagTimeout, Keys: []string{orderID},
		ShardingKey: orderID, DelayLevel: h.timeoutLevel, Body: body,
	})
	if err != nil {
		return fmt.Errorf("send timeout of %s: %w", orderID, err)
	}
	return nil
}

func (h *Handler) paid(ctx context.Context, m mq.Message) error {
	ev, err := unmarshal(m, func(e *events.OrderPaid) (int, *string, string) { return e.Version, &e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	log := h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)
	won := false
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumerApply, m.ID, ev.EventID); err != nil {
			return err
		}
		var err error
		if won, err = transition(tx, ev.OrderID, StatusCreated, StatusPaid, "", h.now()); err != nil || won {
			return err
		}
		_, err = Get(tx, ev.OrderID)
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("pay %s: %w", ev.OrderID, errRetry) // roll back the claim: apply it later
		}
		return err
	})
	if errors.Is(err, dedup.ErrSeen) {
		h.metrics.duplicates.WithLabelValues(m.Tag).Inc()
	} else if err != nil {
		return fmt.Errorf("apply paid to %s: %w", ev.OrderID, err)
	}
	o, err := Get(h.db.WithContext(ctx), ev.OrderID)
	if err != nil {
		return fmt.Errorf("apply paid to %s: %w", ev.OrderID, err)
	}
	if won {
		h.metrics.transitions.WithLabelValues(StatusPaid).Inc()
		log.InfoContext(ctx, "order paid", "status", StatusPaid)
	}
	switch o.Status {
	case StatusPaid:
		// Also when this payment was applied before: the confirmed send may not
		// have happened; logistics deduplicates.
		return h.sendConfirmed(ctx, o)
	case StatusClosed:
		log.WarnContext(ctx, "payment arrived for a closed order; payment-service refunds it on closed")
	case StatusShipped:
		log.InfoContext(ctx, "payment event for an order already shipped")
	default:
		return fmt.Errorf("apply paid to %s: status still %s: %w", ev.OrderID, o.Status, errRetry)
	}
	return nil
}

func (h *Handler) sendConfirmed(ctx context.Context, o Order) error {
	body, err := json.Marshal(events.OrderConfirmed{
		Version: events.Version, EventID: events.EventID(o.OrderID, events.TagConfirmed), OrderID: o.OrderID,
		UserID: o.UserID, ProductID: o.ProductID, Quantity: o.Quantity, ConfirmedAt: o.UpdatedAt,
	})
	if err != nil {
		return fmt.Errorf("encode confirmed of %s: %w", o.OrderID, err)
	}
	if _, err := h.producer.SendSync(ctx, mq.Outgoing{
		Topic: events.TopicOrder, Tag: events.TagConfirmed, Keys: []string{o.OrderID},
		ShardingKey: o.OrderID, Body: body,
	}); err != nil {
		return fmt.Errorf("send confirmed of %s: %w", o.OrderID, err)
	}
	return nil
}

func (h *Handler) shipped(ctx context.Context, m mq.Message) error {
	ev, err := unmarshal(m, func(e *events.OrderShipped) (int, *string, string) { return e.Version, &e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	log := h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)
	won := false
	var o Order
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumerApply, m.ID, ev.EventID); err != nil {
			return err
		}
		var err error
		if won, err = transition(tx, ev.OrderID, StatusPaid, StatusShipped, "", h.now()); err != nil || won {
			return err
		}
		if o, err = Get(tx, ev.OrderID); err != nil {
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("ship %s: %w", ev.OrderID, errRetry)
			}
			return err
		}
		if o.Status == StatusCreated {
			return fmt.Errorf("ship %s before it is paid: %w", ev.OrderID, errRetry)
		}
		return nil
	})
	switch {
	case errors.Is(err, dedup.ErrSeen):
		h.metrics.duplicates.WithLabelValues(m.Tag).Inc()
		log.InfoContext(ctx, "shipment already applied")
	case err != nil:
		return fmt.Errorf("apply shipped to %s: %w", ev.OrderID, err)
	case won:
		h.metrics.transitions.WithLabelValues(StatusShipped).Inc()
		log.InfoContext(ctx, "order shipped", "status", StatusShipped)
	case o.Status == StatusClosed:
		log.WarnContext(ctx, "shipment reported for a closed order")
	}
	return nil
}

// Timeout handles GID-order-timeout (tag timeout): it closes the order if it
// is still unpaid and sends closed.
func (h *Handler) Timeout(ctx context.Context, m mq.Message) error {
	if m.Tag != events.TagTimeout {
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
	ev, err := decodeTimeout(m)
	if err != nil {
		return err
	}
	return h.close(ctx, h.timeoutLog(m, ev), ev.OrderID, ReasonPayTimeout, m.Tag, m.ID, ev.EventID)
}

// decodeTimeout decodes and validates a timeout event.
func decodeTimeout(m mq.Message) (events.PayTimeout, error) {
	return unmarshal(m, func(e *events.PayTimeout) (int, *string, string) { return e.Version, &e.EventID, e.OrderID })
}

// timeoutLog is the logger of a timeout event's lines, alone or in a batch.
func (h *Handler) timeoutLog(m mq.Message, ev events.PayTimeout) *slog.Logger {
	return h.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID)
}

// close moves orderID created→closed if it is still created and, whenever the
// order ends up closed (now or before), sends closed; a paid or shipped order
// is left alone. claimKeys, when given, are claimed in the same transaction.
func (h *Handler) close(ctx context.Context, log *slog.Logger, orderID, reason, tag string, claimKeys ...string) error {
	won := false
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if len(claimKeys) > 0 {
			if err := dedup.Claim(tx, consumerTimeout, claimKeys...); err != nil {
				return err
			}
		}
		var err error
		if won, err = transition(tx, orderID, StatusCreated, StatusClosed, reason, h.now()); err != nil || won {
			return err
		}
		if _, err = Get(tx, orderID); errors.Is(err, ErrNotFound) {
			return fmt.Errorf("close %s: %w", orderID, errRetry)
		}
		return err
	})
	if errors.Is(err, dedup.ErrSeen) {
		h.metrics.duplicates.WithLabelValues(tag).Inc()
	} else if err != nil {
		return fmt.Errorf("close %s: %w", orderID, err)
	}
	o, err := Get(h.db.WithContext(ctx), orderID)
	if err != nil {
		return fmt.Errorf("close %s: %w", orderID, err)
	}
	if won {
		h.metrics.transitions.WithLabelValues(StatusClosed).Inc()
		log.InfoContext(ctx, "order closed", "status", StatusClosed, "reason", reason)
	}
	switch o.Status {
	case StatusClosed:
		// Also when closed before: the closed send may not have happened.
		return h.sendClosed(ctx, o)
	case StatusCreated:
		return fmt.Errorf("close %s: still created: %w", orderID, errRetry)
	default:
		log.InfoContext(ctx, "order not closed: already "+o.Status, "status", o.Status)
		return nil
	}
}

func (h *Handler) sendClosed(ctx context.Context, o Order) error {
	m, err := closedMessage(o)
	if err != nil {
		return err
	}
	if _, err := h.producer.SendSync(ctx, m); err != nil {
		return fmt.Errorf("send closed of %s: %w", o.OrderID, err)
	}
	return nil
}

// closedMessage is the closed event of the closed order o, sent alone or in
// a batch.
func closedMessage(o Order) (mq.Outgoing, error) {
	reason := o.CloseReason
	if reason == "" {
		reason = ReasonPayTimeout
	}
	body, err := json.Marshal(events.OrderClosed{
		Version: events.Version, EventID: events.EventID(o.OrderID, events.TagClosed), OrderID: o.OrderID,
		ProductID: o.ProductID, Quantity: o.Quantity, Reason: reason, ClosedAt: o.UpdatedAt,
	})
	if err != nil {
		return mq.Outgoing{}, fmt.Errorf("encode closed of %s: %w", o.OrderID, err)
	}
	return mq.Outgoing{
		Topic: events.TopicOrder, Tag: events.TagClosed, Keys: []string{o.OrderID},
		ShardingKey: o.OrderID, Body: body,
	}, nil
}
