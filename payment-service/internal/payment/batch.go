package payment

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// HandleBatch is the mq.BatchHandler of payment.apply. It takes first
// deliveries of valid created events, or of valid closed events, and applies
// them in one transaction (see createdBatch and closedBatch). Any other set
// (mixed or other tags, a redelivery, an invalid body, a message, event or
// order twice in the batch) is mq.ErrNoBatch, untouched. Any failure (an
// event applied or a payment recorded before, a payment not created yet, a
// deadlock) rolls the transaction back and returns an error; each message
// then goes to Handle alone.
func (h *Handler) HandleBatch(ctx context.Context, ms []mq.Message) error {
	if len(ms) == 0 {
		return mq.ErrNoBatch
	}
	switch ms[0].Tag {
	case events.TagCreated:
		return h.createdBatch(ctx, ms)
	case events.TagClosed:
		return h.closedBatch(ctx, ms)
	default:
		return mq.ErrNoBatch
	}
}

// createdBatch records the pending payments of created events: one claim of
// every message ID and event ID, one INSERT of every payment.
func (h *Handler) createdBatch(ctx context.Context, ms []mq.Message) error {
	evs, keys, _, err := mq.BatchEvents(ms, events.TagCreated, decodeCreated,
		func(e *events.OrderCreated) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	ps := make([]Payment, len(evs))
	for i, ev := range evs {
		ps[i] = Payment{OrderID: ev.OrderID, AmountCents: ev.AmountCents}
	}
	// Rows in key order, as dedup.Claim sorts its keys, so two batches
	// overlapping (a re-send on another replica) lock rows in one order.
	slices.SortFunc(ps, func(a, b Payment) int { return cmp.Compare(a.OrderID, b.OrderID) })
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, Consumer, keys...); err != nil {
			return err
		}
		return insertPendings(tx, ps)
	})
	if err != nil {
		return fmt.Errorf("apply %d created events from %s: %w", len(ms), ms[0].ID, err)
	}
	for i, ev := range evs {
		h.metrics.count(resultCreated)
		h.log.InfoContext(ctx, "payment pending", "msg_id", ms[i].ID, "event_id", ev.EventID,
			"order_id", ev.OrderID, "amount_cents", ev.AmountCents)
	}
	return nil
}

// closedBatch applies closed events as closed does one by one: one claim of
// every message ID and event ID, one SELECT ... FOR UPDATE of every payment,
// then one UPDATE per change made (pending -> cancelled; paid -> refunded,
// for a payment that landed on an order its timeout closed); a payment
// already cancelled or refunded is left alone. A payment not created yet
// fails the batch: Handle retries that one later.
func (h *Handler) closedBatch(ctx context.Context, ms []mq.Message) error {
	evs, keys, ids, err := mq.BatchEvents(ms, events.TagClosed, decodeClosed,
		func(e *events.OrderClosed) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	// Locked in key order, as dedup.Claim sorts its keys, so two batches
	// overlapping lock rows in one order.
	sorted := slices.Sorted(slices.Values(ids))
	var (
		ends    map[string]Status // the status each payment ends in
		changed map[string]bool   // changed by this batch
	)
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		ends, changed = make(map[string]Status, len(ids)), make(map[string]bool, len(ids)) // fn may run twice
		if err := dedup.Claim(tx, Consumer, keys...); err != nil {
			return err
		}
		var ps []Payment
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("order_id IN ?", sorted).Order("order_id").Find(&ps).Error; err != nil {
			return fmt.Errorf("lock %d payments: %w", len(sorted), err)
		}
		if len(ps) != len(sorted) {
			return fmt.Errorf("%d of %d payments: %w", len(sorted)-len(ps), len(sorted), errNotCreated)
		}
		moves := map[Status][]string{} // from -> order IDs
		for _, p := range ps {
			to, ok := closedStatus(p.Status)
			if !ok {
				ends[p.OrderID] = p.Status
				continue
			}
			ends[p.OrderID], changed[p.OrderID] = to, true
			moves[p.Status] = append(moves[p.Status], p.OrderID)
		}
		now := time.Now().UTC()
		for _, from := range []Status{StatusPending, StatusPaid} {
			if len(moves[from]) == 0 {
				continue
			}
			to, _ := closedStatus(from)
			res := tx.Model(&Payment{}).Where("order_id IN ? AND status = ?", moves[from], from).
				Updates(map[string]any{"status": to, "updated_at": now})
			if res.Error != nil {
				return fmt.Errorf("update %d payments to %s: %w", len(moves[from]), to, res.Error)
			}
			if res.RowsAffected != int64(len(moves[from])) {
				// Cannot happen under the row locks; never ack a change not made.
				return fmt.Errorf("update %d payments to %s: %d rows changed", len(moves[from]), to, res.RowsAffected)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("apply %d closed events from %s: %w", len(ms), ms[0].ID, err)
	}
	for i, ev := range evs {
		log := h.log.With("msg_id", ms[i].ID, "event_id", ev.EventID, "order_id", ev.OrderID)
		to := ends[ev.OrderID]
		switch {
		case !changed[ev.OrderID]:
			log.InfoContext(ctx, "payment already closed", "status", to)
		case to == StatusCancelled:
			h.metrics.count(resultCancelled)
			log.InfoContext(ctx, "payment cancelled", "reason", ev.Reason)
		case to == StatusRefunded:
			h.metrics.count(resultRefunded)
			// A payment that landed on an order closed by its pay timeout.
			log.InfoContext(ctx, "payment refunded", "reason", ev.Reason)
		}
	}
	return nil
}
