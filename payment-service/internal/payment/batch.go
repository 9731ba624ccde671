package payment

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// HandleBatch is the mq.BatchHandler of payment.apply. It takes first
// deliveries of valid created events only and records their pending
// payments in one transaction: one claim of every message ID and event ID,
// one INSERT of every payment. Any other set (another tag, a redelivery, an
// invalid body, an event or order twice in the batch) is mq.ErrNoBatch,
// untouched. Any failure (an event applied or a payment recorded before, a
// deadlock) rolls the transaction back and returns an error; each message
// then goes to Handle alone.
func (h *Handler) HandleBatch(ctx context.Context, ms []mq.Message) error {
	evs := make([]events.OrderCreated, len(ms))
	keys := make([]string, 0, 2*len(ms))
	seen := make(map[string]bool, 3*len(ms))
	for i, m := range ms {
		if m.Tag != events.TagCreated || m.ReconsumeTimes > 0 {
			return mq.ErrNoBatch
		}
		ev, err := decodeCreated(m)
		if err != nil {
			return mq.ErrNoBatch // Handle logs and counts the poison message
		}
		// A duplicate within the batch would make the INSERT fail after
		// the round trips; Handle tells them apart without one.
		for _, k := range []string{"msg:" + m.ID, "event:" + ev.EventID, "order:" + ev.OrderID} {
			if seen[k] {
				return mq.ErrNoBatch
			}
			seen[k] = true
		}
		evs[i] = ev
		keys = append(keys, m.ID, ev.EventID)
	}
	ps := make([]Payment, len(evs))
	for i, ev := range evs {
		ps[i] = Payment{OrderID: ev.OrderID, AmountCents: ev.AmountCents}
	}
	// Rows in key order, as dedup.Claim sorts its keys, so two batches
	// overlapping (a re-send on another replica) lock rows in one order.
	slices.SortFunc(ps, func(a, b Payment) int { return cmp.Compare(a.OrderID, b.OrderID) })
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
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
