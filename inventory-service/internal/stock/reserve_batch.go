package stock

import (
	"context"
	"errors"
	"fmt"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// HandleBatch is the mq.BatchHandler of inventory.reserve: it deducts the
// orders of several created events in one transaction (Store.DeductBatch)
// and sends their ledger lines in one batch, with the same rows, ledger
// lines, metrics and log lines as Handle gives each event alone.
//
// It takes only first deliveries of valid created events whose deductions
// all apply; for anything else it returns an error wrapping mq.ErrNoBatch,
// having written nothing, and Handle decides each message as usual. Any
// other error either rolled the deductions back, or came from the ledger
// send after the commit: Handle then finds each event consumed and re-sends
// its ledger line.
func (r *Reserver) HandleBatch(ctx context.Context, ms []mq.Message) error {
	evs, _, _, err := mq.BatchEvents(ms, events.TagCreated, decodeCreated,
		func(e *events.OrderCreated) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	ds := make([]Deduction, len(evs))
	for i, ev := range evs {
		ds[i] = deduction(ms[i], ev)
	}
	mvs, err := r.store.DeductBatch(ctx, ds)
	if errors.Is(err, errSplitBatch) {
		return fmt.Errorf("%w: %w", mq.ErrNoBatch, err)
	}
	if err != nil {
		return fmt.Errorf("deduct for %d orders: %w", len(ds), err)
	}
	lines := make([]mq.Outgoing, len(mvs))
	for i, mv := range mvs {
		r.metrics.Deductions.Inc()
		d := ds[i]
		// The line Handle writes, attribute for attribute.
		r.log.InfoContext(ctx, "stock deducted", "msg_id", d.MsgID, "event_id", d.EventID,
			"order_id", d.OrderID, "product_id", d.ProductID, "user_id", d.UserID,
			"quantity", mv.Quantity, "sale_id", mv.SaleID)
		if lines[i], err = ledgerLine(mv); err != nil {
			return err
		}
	}
	// One send for the batch, in its order, to the ledger's one queue. Should
	// it fail, Handle re-sends each line (the deductions are committed).
	if err := r.producer.SendBatch(ctx, lines); err != nil {
		return fmt.Errorf("send ledger lines of %d orders: %w", len(lines), err)
	}
	return nil
}
