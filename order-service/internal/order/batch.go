package order

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

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
	evs, keys, ids, err := mq.BatchEvents(ms, events.TagCreated, decodeCreated,
		func(e *events.OrderCreated) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	now := h.now()
	orders := make([]Order, len(evs))
	for i, ev := range evs {
		orders[i] = newOrder(ev, now)
	}
	// Rows in key order, as dedup.Claim sorts its keys, so two batches
	// overlapping (a re-send on another replica) lock rows in one order.
	slices.SortFunc(orders, func(a, b Order) int { return cmp.Compare(a.OrderID, b.OrderID) })
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumerApply, keys...); err != nil {
			return err
		}
		return tx.Create(&orders).Error // one INSERT; a duplicate fails it
	})
	if err != nil {
		return fmt.Errorf("persist %d orders from %s: %w", len(ms), ms[0].ID, err)
	}
	for i, ev := range evs {
		h.metrics.transitions.WithLabelValues(StatusCreated).Inc()
		h.createdLog(ms[i], ev).InfoContext(ctx, "order persisted", "status", StatusCreated)
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

// TimeoutBatch is the mq.BatchHandler of GID-order-timeout. It takes first
// deliveries of valid timeout events only and closes their orders in one
// transaction: one claim of every message ID and event ID, one SELECT ...
// FOR UPDATE of every order, one UPDATE of those still created. Any other set
// (another tag, a redelivery, an invalid body, a message, event or order
// twice in the batch) is mq.ErrNoBatch, untouched.
//
// Each order ends as Timeout leaves it: created is closed (pay_timeout),
// paid or shipped is left alone, and every order closed, now or before, gets
// its closed event. Any failure of the transaction (an event applied before,
// an order not persisted yet, a deadlock) rolls it back and returns an error,
// and each message then goes to Timeout alone. After the commit it sends the
// closed events in one SendBatch (they have no delay level); if that fails it
// returns an error although the orders are closed: Timeout then finds each
// order closed and sends its closed event again, as after a crash between
// commit and send.
func (h *Handler) TimeoutBatch(ctx context.Context, ms []mq.Message) error {
	// Two timeouts of one order (its created event re-sent) share the event
	// ID: BatchEvents leaves such a batch to Timeout.
	evs, keys, ids, err := mq.BatchEvents(ms, events.TagTimeout, decodeTimeout,
		func(e *events.PayTimeout) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	// DATETIME(3): the time the row keeps, so the closed events carry the
	// same closed_at as Timeout's, which reads it back.
	now := h.now().Truncate(time.Millisecond)
	// Locked in key order, as dedup.Claim sorts its keys, so two batches
	// overlapping lock rows in one order.
	sorted := slices.Sorted(slices.Values(ids))
	var (
		orders map[string]Order // as committed
		won    map[string]bool  // closed by this batch
	)
	err = h.tx.Transaction(ctx, func(tx *gorm.DB) error {
		orders, won = make(map[string]Order, len(ids)), make(map[string]bool, len(ids)) // fn may run twice
		if err := dedup.Claim(tx, consumerTimeout, keys...); err != nil {
			return err
		}
		var rows []Order
		if err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where("order_id IN ?", sorted).Order("order_id").Find(&rows).Error; err != nil {
			return fmt.Errorf("lock %d orders: %w", len(sorted), err)
		}
		if len(rows) != len(sorted) {
			return fmt.Errorf("close %d orders: %d not persisted: %w", len(sorted), len(sorted)-len(rows), errRetry)
		}
		var closing []string
		for _, o := range rows {
			if o.Status == StatusCreated {
				closing = append(closing, o.OrderID)
				o.Status, o.CloseReason, o.UpdatedAt = StatusClosed, ReasonPayTimeout, now
				won[o.OrderID] = true
			}
			orders[o.OrderID] = o
		}
		if len(closing) == 0 {
			return nil
		}
		res := tx.Model(&Order{}).Where("order_id IN ? AND status = ?", closing, StatusCreated).
			Updates(map[string]any{"status": StatusClosed, "close_reason": ReasonPayTimeout, "updated_at": now})
		if res.Error != nil {
			return fmt.Errorf("close %d orders: %w", len(closing), res.Error)
		}
		if res.RowsAffected != int64(len(closing)) {
			// Cannot happen under the row locks; never ack a close not made.
			return fmt.Errorf("close %d orders: %d rows changed", len(closing), res.RowsAffected)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("close %d orders from %s: %w", len(ms), ms[0].ID, err)
	}
	var out []mq.Outgoing
	for i, ev := range evs {
		o, log := orders[ev.OrderID], h.timeoutLog(ms[i], ev)
		if won[ev.OrderID] {
			h.metrics.transitions.WithLabelValues(StatusClosed).Inc()
			log.InfoContext(ctx, "order closed", "status", StatusClosed, "reason", ReasonPayTimeout)
		}
		if o.Status != StatusClosed {
			log.InfoContext(ctx, "order not closed: already "+o.Status, "status", o.Status)
			continue
		}
		// Also when closed before: the closed send may not have happened.
		m, err := closedMessage(o)
		if err != nil {
			return err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil
	}
	if err := h.producer.SendBatch(ctx, out); err != nil {
		return fmt.Errorf("send %d closed events from %s: %w", len(out), ms[0].ID, err)
	}
	return nil
}
