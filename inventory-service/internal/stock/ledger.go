package stock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Ledger consumes STOCK_LEDGER (handler inventory.ledger, group
// GID-inventory-ledger, orderly on a one-queue topic) and appends each
// movement to stock_ledger, whose seq is then the global order of movements.
type Ledger struct {
	store   *Store
	metrics *Metrics
	log     *slog.Logger
}

// NewLedger returns a Ledger writing through store.
func NewLedger(store *Store, m *Metrics, log *slog.Logger) *Ledger {
	return &Ledger{store: store, metrics: m, log: log}
}

// Handle appends one movement. nil acks; an error wrapping mq.ErrPermanent is
// logged and, after mq.PoisonRetries, dead-lettered by pkg/mq; any other
// error suspends the queue and retries until it succeeds.
func (l *Ledger) Handle(ctx context.Context, m mq.Message) error {
	ev, err := events.Decode[events.StockMovement](m.Body)
	if err == nil {
		err = validateDelta(ev)
	}
	if err != nil {
		return fmt.Errorf("movement %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	log := l.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID, "product_id", ev.ProductID)
	e, err := l.store.AppendLedger(ctx, m.ID, ev)
	if errors.Is(err, dedup.ErrSeen) {
		l.metrics.Duplicates.WithLabelValues(ConsumerLedger).Inc()
		log.InfoContext(ctx, "ledger line appended before")
		return nil
	}
	if err != nil {
		return err
	}
	l.metrics.LedgerLines.Inc()
	log.InfoContext(ctx, "ledger line appended", "seq", e.Seq, "kind", e.Kind, "delta", e.Delta, "sale_id", e.SaleID)
	return nil
}

// maxQuantity bounds a movement's units; anything above is malformed.
const maxQuantity = 10_000_000

// validateDelta checks what events.StockMovement.Validate leaves to the
// ledger: the sign and size of the delta for its kind, and the sale.
func validateDelta(ev events.StockMovement) error {
	switch {
	case ev.SaleID < 0:
		return fmt.Errorf("sale_id %d negative", ev.SaleID)
	case ev.Kind == events.MovementDeduct && ev.Delta < 0 && ev.Delta >= -maxQuantity:
		return nil
	case ev.Kind == events.MovementRelease && ev.Delta > 0 && ev.Delta <= maxQuantity:
		return nil
	}
	return fmt.Errorf("kind %q with delta %d", ev.Kind, ev.Delta)
}
