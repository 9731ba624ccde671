package payment

import (
	"context"
	"errors"
	"log/slog"

	"gorm.io/gorm"
)

// Service is what the HTTP API does with payments.
type Service struct {
	db       *gorm.DB
	notifier *Notifier
	log      *slog.Logger
	metrics  *Metrics
}

// NewService returns a Service over the payments table that announces
// payments through notifier.
func NewService(gdb *gorm.DB, notifier *Notifier, log *slog.Logger, metrics *Metrics) *Service {
	return &Service{db: gdb, notifier: notifier, log: log, metrics: metrics}
}

// Get returns the payment of orderID or ErrNotFound.
func (s *Service) Get(ctx context.Context, orderID string) (Payment, error) {
	return get(ctx, s.db, orderID)
}

// Pay captures the payment of orderID (pending -> paid) and sends the paid
// event. Paying a paid payment succeeds again and re-sends the event, so a
// client retry also repairs a lost event. It returns ErrClosed when the order
// was closed first and ErrNotFound while the payment is unknown.
func (s *Service) Pay(ctx context.Context, orderID string) (Payment, error) {
	p, won, err := pay(ctx, s.db, orderID)
	if errors.Is(err, ErrClosed) {
		s.metrics.count(resultRejected)
		s.log.InfoContext(ctx, "pay rejected: order closed", "order_id", orderID, "status", p.Status)
		return p, err
	}
	if err != nil {
		return Payment{}, err
	}
	if won {
		s.metrics.count(resultPaid)
		s.log.InfoContext(ctx, "payment paid", "order_id", orderID, "amount_cents", p.AmountCents)
	}
	s.notifier.Paid(ctx, p)
	return p, nil
}
