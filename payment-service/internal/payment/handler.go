package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// maxNotDueWait: a pay timeout that arrives this little before the deadline
// (clocks of the broker and the database apart, or the embedded broker's
// scaled delays) waits in the handler; an earlier one goes back to the broker.
const maxNotDueWait = 5 * time.Second

// Handler applies the ORDER events payment subscribes to: created and closed
// (GID-payment, payment.apply) and timeout (GID-payment-timeout,
// payment.timeout). Every message is one Store.update with its decision; a
// batch of messages is the same call over many orders.
type Handler struct {
	store        *Store
	reservations *Reservations
	log          *slog.Logger
	metrics      *Metrics
}

// NewHandler returns the handler of both groups; a pay timeout of an order
// with no payment row yet makes the row from its reservation.
func NewHandler(store *Store, reservations *Reservations, log *slog.Logger, metrics *Metrics) *Handler {
	return &Handler{store: store, reservations: reservations, log: log, metrics: metrics}
}

// Handle applies one message. nil acks; an error wrapping mq.ErrPermanent
// (malformed event, unexpected tag) is dead-lettered by pkg/mq after
// mq.PoisonRetries; any other error is redelivered, among them a pay timeout
// that came more than maxNotDueWait before its deadline.
func (h *Handler) Handle(ctx context.Context, m mq.Message) error {
	return dedup.ApplyOne(ctx, m, h.apply, func(ctx context.Context, m mq.Message) {
		h.log.InfoContext(ctx, "event already applied", "msg_id", m.ID, "order_id", m.Keys, "tag", m.Tag)
	})
}

// HandleBatch is the mq.BatchHandler of both groups: the messages' orders in
// one transaction. A set it does not take is mq.ErrNoBatch; any failure (an
// event applied before among them) rolls back and pkg/mq gives each message
// to Handle.
func (h *Handler) HandleBatch(ctx context.Context, ms []mq.Message) error {
	if len(ms) == 0 {
		return mq.ErrNoBatch
	}
	return h.apply(ctx, ms)
}

func (h *Handler) apply(ctx context.Context, ms []mq.Message) error {
	switch tag := ms[0].Tag; tag {
	case events.TagCreated:
		return h.created(ctx, ms)
	case events.TagClosed:
		return h.closed(ctx, ms)
	case events.TagTimeout:
		return h.timeout(ctx, ms)
	default:
		if len(ms) > 1 {
			return mq.ErrNoBatch
		}
		return fmt.Errorf("message %s: unexpected tag %q: %w", ms[0].ID, tag, mq.ErrPermanent)
	}
}

func (h *Handler) created(ctx context.Context, ms []mq.Message) error {
	evs, keys, ids, err := mq.Events(ms, events.TagCreated, events.Decode[events.OrderCreated],
		func(e *events.OrderCreated) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	seeds := make([]Payment, len(evs))
	for i, ev := range evs {
		seeds[i] = seed(ev)
	}
	outs, err := h.store.update(ctx, keys, seeds, ids, record)
	if err != nil {
		return fmt.Errorf("record %d payments from %s: %w", len(ms), ms[0].ID, err)
	}
	for i, ev := range evs {
		log := h.log.With("msg_id", ms[i].ID, "event_id", ev.EventID, "order_id", ev.OrderID)
		if o := outs[ev.OrderID]; o.inserted {
			h.metrics.count(resultCreated)
			log.InfoContext(ctx, "payment pending", "amount_cents", ev.AmountCents, "pay_deadline", ev.PayDeadline)
		} else {
			log.InfoContext(ctx, "payment completed from its created event", "status", o.Status)
		}
	}
	return nil
}

// closed applies inventory's refusal (reason out_of_stock): the payment is
// cancelled, or refunded if taken. A closed event of this service's own
// expiry (pay_timeout) has nothing left to do here.
func (h *Handler) closed(ctx context.Context, ms []mq.Message) error {
	evs, keys, _, err := mq.Events(ms, events.TagClosed, events.Decode[events.OrderClosed],
		func(e *events.OrderClosed) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	var seeds []Payment
	var refused []string
	for _, ev := range evs {
		if ev.Reason == events.ReasonOutOfStock {
			// Refused before the payment heard of the order: record it, so
			// that a pay later is refused too.
			seeds = append(seeds, Payment{OrderID: ev.OrderID, ProductID: ev.ProductID, Quantity: ev.Quantity, UserID: ev.UserID})
			refused = append(refused, ev.OrderID)
		}
	}
	outs, err := h.store.update(ctx, keys, seeds, refused, refuse)
	if err != nil {
		return fmt.Errorf("apply %d closed events from %s: %w", len(ms), ms[0].ID, err)
	}
	for i, ev := range evs {
		log := h.log.With("msg_id", ms[i].ID, "event_id", ev.EventID, "order_id", ev.OrderID, "reason", ev.Reason)
		o, ok := outs[ev.OrderID]
		switch {
		case !ok:
			log.InfoContext(ctx, "order closed by its pay deadline")
		case o.result != "":
			h.metrics.count(o.result)
			log.InfoContext(ctx, "payment "+string(o.Status)+": inventory refused the order", "status", o.Status)
		default:
			log.InfoContext(ctx, "payment already closed", "status", o.Status)
		}
	}
	return nil
}

// timeout expires the orders of pay-timeout messages whose deadline has
// passed; an order paid in time is left alone. No claim: the expiry is a
// transition of the row itself, and a redelivery finds it made. An order
// without a payment row yet (its created event still in GID-payment's
// backlog) gets one from its reservation first; one whose reservation is
// gone too is expired by the sweeper once its created event made the row.
func (h *Handler) timeout(ctx context.Context, ms []mq.Message) error {
	evs, _, _, err := mq.Events(ms, events.TagTimeout, events.Decode[events.PayTimeout],
		func(e *events.PayTimeout) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.OrderIDs...)
	}
	log := h.log.With("msg_id", ms[0].ID, "messages", len(ms))
	var seeds []Payment
	seeded, waited := false, false
	for {
		outs, err := h.store.update(ctx, nil, seeds, ids, expire)
		if err != nil {
			return fmt.Errorf("expire %d orders from %s: %w", len(ids), ms[0].ID, err)
		}
		h.countExpired(ctx, log, outs)
		var early, missing []string
		wait := time.Duration(0)
		for _, id := range ids {
			switch o := outs[id]; {
			case o.noRow:
				missing = append(missing, id)
			case errors.Is(o.err, errNotDue):
				early = append(early, id)
				wait = max(wait, o.Deadline().Sub(time.Now().UTC()))
			}
		}
		if len(missing) > 0 && !seeded {
			seeded = true
			if seeds, err = h.reservations.Seeds(ctx, missing); err != nil {
				return fmt.Errorf("expire %d orders from %s: %w", len(missing), ms[0].ID, err)
			}
			if len(seeds) > 0 {
				ids = append(early, missing...)
				continue
			}
		}
		if len(missing) > 0 {
			log.WarnContext(ctx, "pay timeout of orders unknown here and in redis; the sweeper expires them once recorded",
				"orders", len(missing), "first_order_id", missing[0])
		}
		if len(early) == 0 {
			return nil
		}
		if waited || wait > maxNotDueWait {
			return fmt.Errorf("expire %d orders from %s: %w (%v early)", len(early), ms[0].ID, errNotDue, wait)
		}
		log.InfoContext(ctx, "pay timeout before the deadline; waiting", "orders", len(early), "wait", wait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait + 10*time.Millisecond):
		}
		ids, seeds, waited = early, nil, true
	}
}

// countExpired counts and logs the expiries update made.
func (h *Handler) countExpired(ctx context.Context, log *slog.Logger, outs map[string]outcome) {
	for _, id := range slices.Sorted(maps.Keys(outs)) {
		if o := outs[id]; o.result == resultExpired {
			h.metrics.count(resultExpired)
			log.InfoContext(ctx, "payment expired: pay deadline passed", "order_id", id, "pay_deadline", o.Deadline())
		}
	}
}
