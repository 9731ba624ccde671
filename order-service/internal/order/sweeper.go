package order

import (
	"context"
	"errors"
	"time"

	"seckill/pkg/events"
)

// Sweeper closes created orders older than the pay timeout plus a grace
// period: their timeout message was lost (or is badly late).
type Sweeper struct {
	h        *Handler
	maxAge   time.Duration
	interval time.Duration
	batch    int
}

// NewSweeper returns a sweeper that every interval closes created orders
// older than maxAge (the pay-timeout delay + grace), up to 500 per pass.
func NewSweeper(h *Handler, maxAge, interval time.Duration) *Sweeper {
	return &Sweeper{h: h, maxAge: maxAge, interval: interval, batch: 500}
}

// Run sweeps until ctx is done; it returns nil then.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	// Orders closed by a pass whose closed send failed: only the send is left,
	// and they no longer match the created query, so retry them by ID.
	retry, err := s.Recent(ctx, resendWindow)
	if err != nil {
		s.h.log.WarnContext(ctx, "sweep: list recently swept orders", "err", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ids, err := s.Due(ctx)
		if err != nil {
			s.h.log.WarnContext(ctx, "sweep: list overdue orders", "err", err)
		}
		retry = s.close(ctx, append(retry, ids...))
	}
}

// resendWindow: on start, the sweeper sends closed again for the orders it
// closed this recently, in case the process died between a close and its
// send (duplicates are harmless: consumers deduplicate on the event ID).
const resendWindow = time.Hour

// Recent lists orders the sweeper closed within window.
func (s *Sweeper) Recent(ctx context.Context, window time.Duration) ([]string, error) {
	var ids []string
	err := s.h.db.WithContext(ctx).Model(&Order{}).
		Where("status = ? AND close_reason = ? AND updated_at > ?", StatusClosed, ReasonSweeper, s.h.now().Add(-window)).
		Limit(s.batch).Pluck("order_id", &ids).Error
	return ids, err
}

// Due lists created orders older than maxAge, oldest first.
func (s *Sweeper) Due(ctx context.Context) ([]string, error) {
	var ids []string
	cutoff := s.h.now().Add(-s.maxAge)
	err := s.h.db.WithContext(ctx).Model(&Order{}).
		Where("status = ? AND created_at < ?", StatusCreated, cutoff).
		Order("created_at").Limit(s.batch).Pluck("order_id", &ids).Error
	return ids, err
}

// SweepOnce closes every order Due returns and reports how many it handled
// without error.
func (s *Sweeper) SweepOnce(ctx context.Context) (int, error) {
	ids, err := s.Due(ctx)
	if err != nil {
		return 0, err
	}
	failed := s.close(ctx, ids)
	return len(ids) - len(failed), nil
}

func (s *Sweeper) close(ctx context.Context, ids []string) (failed []string) {
	for _, id := range ids {
		log := s.h.log.With("order_id", id)
		if err := s.h.close(ctx, log, id, ReasonSweeper, events.TagTimeout); err != nil {
			if errors.Is(err, context.Canceled) {
				return nil
			}
			log.WarnContext(ctx, "sweep: close order", "err", err)
			failed = append(failed, id)
		}
	}
	return failed
}
