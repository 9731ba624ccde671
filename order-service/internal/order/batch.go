package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// ApplyBatch is the mq.BatchHandler of GID-order. It takes first deliveries
// of valid created events only and persists them in one transaction: one
// claim of every message ID and event ID, one INSERT of every order. Any
// other set (another tag, a redelivery, an invalid body, an event or order
// twice in the batch) is mq.ErrNoBatch, untouched.
//
// Any failure of the transaction (an event or order persisted before, a
// deadlock) rolls it back and returns an error, and each message then goes
// to Apply alone. After the commit it sends the pay-timeout of every order;
// if a send fails it returns an error although the orders are committed:
// Apply then finds each order persisted and sends its timeout again, as
// after a crash between commit and send.
func (h *Handler) ApplyBatch(ctx context.Context, ms []mq.Message) error {
	evs := make([]events.OrderCreated, len(ms))
	keys := make([]string, 0, 2*len(ms))
	seen := make(map[string]bool, 3*len(ms))
	for i, m := range ms {
		if m.Tag != events.TagCreated || m.ReconsumeTimes > 0 {
			return mq.ErrNoBatch
		}
		ev, err := decodeCreated(m)
		if err != nil {
			return mq.ErrNoBatch // Apply logs and counts the poison message
		}
		// A duplicate within the batch would make the INSERT fail after
		// the round trips; Apply tells them apart without one.
		for _, k := range []string{"msg:" + m.ID, "event:" + ev.EventID, "order:" + ev.OrderID} {
			if seen[k] {
				return mq.ErrNoBatch
			}
			seen[k] = true
		}
		evs[i] = ev
		keys = append(keys, m.ID, ev.EventID)
	}
	now := h.now()
	orders := make([]Order, len(evs))
	for i, ev := range evs {
		orders[i] = newOrder(ev, now)
	}
	// Rows in key order, as dedup.Claim sorts its keys, so two batches
	// overlapping (a re-send on another replica) lock rows in one order.
	slices.SortFunc(orders, func(a, b Order) int { return cmp.Compare(a.OrderID, b.OrderID) })
	err := h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumerApply, keys...); err != nil {
			return err
		}
		return tx.Create(&orders).Error // one INSERT; a duplicate fails it
	})
	if err != nil {
		return fmt.Errorf("persist %d orders from %s: %w", len(ms), ms[0].ID, err)
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		h.metrics.transitions.WithLabelValues(StatusCreated).Inc()
		h.createdLog(ms[i], ev).InfoContext(ctx, "order persisted", "status", StatusCreated)
		ids[i] = ev.OrderID
	}
	return h.sendTimeouts(ctx, ids)
}

// sendTimeouts sends the pay-timeout of every order concurrently: a delayed
// message cannot be part of a batch send (RocketMQ 4.9 drops the delay
// level there), and one send after another would wait a round trip each.
func (h *Handler) sendTimeouts(ctx context.Context, orderIDs []string) error {
	errs := make([]error, len(orderIDs))
	var wg sync.WaitGroup
	for i, id := range orderIDs {
		wg.Go(func() { errs[i] = h.sendTimeout(ctx, id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
