package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
)

// ErrUnavailable: neither the payment row nor the reservation could be read
// (Redis unreachable); the client retries.
var ErrUnavailable = errors.New("payment temporarily unavailable")

// Reservations reads the reservations the intake script wrote in Redis:
// an accepted order is there from before its 202.
type Reservations struct {
	rdb redis.UniversalClient
}

// NewReservations reads from rdb.
func NewReservations(rdb redis.UniversalClient) *Reservations { return &Reservations{rdb: rdb} }

// Get reads the order's reservation; found false when Redis has none.
func (rs *Reservations) Get(ctx context.Context, orderID string) (r events.Reservation, found bool, err error) {
	found, err = rs.each(ctx, []string{orderID}, func(got events.Reservation) { r = got })
	return r, found, err
}

// Seeds returns the payment rows of the orders whose reservation Redis has
// (one pipelined round trip).
func (rs *Reservations) Seeds(ctx context.Context, orderIDs []string) ([]Payment, error) {
	var seeds []Payment
	_, err := rs.each(ctx, orderIDs, func(r events.Reservation) { seeds = append(seeds, seed(r.Created())) })
	return seeds, err
}

func (rs *Reservations) each(ctx context.Context, orderIDs []string, fn func(events.Reservation)) (found bool, err error) {
	pipe := rs.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(orderIDs))
	for i, id := range orderIDs {
		cmds[i] = pipe.HGetAll(ctx, events.OrderKey(id))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("read %d reservations: %w: %w", len(orderIDs), ErrUnavailable, err)
	}
	for _, c := range cmds {
		if len(c.Val()) == 0 {
			continue
		}
		r, err := events.ParseReservation(c.Val())
		if err != nil {
			return found, err
		}
		found = true
		fn(r)
	}
	return found, nil
}

// Service is what the HTTP API does with payments.
type Service struct {
	store        *Store
	reservations *Reservations
	log          *slog.Logger
	metrics      *Metrics
}

// NewService returns a Service deciding through store and reading the
// intake's reservations.
func NewService(store *Store, reservations *Reservations, log *slog.Logger, metrics *Metrics) *Service {
	return &Service{store: store, reservations: reservations, log: log, metrics: metrics}
}

// Get returns the payment of orderID: its row, or, before any row exists, a
// pending payment made from the reservation (not stored). ErrNotFound when
// there is neither.
func (s *Service) Get(ctx context.Context, orderID string) (Payment, error) {
	p, err := get(ctx, s.store.db, orderID)
	if !errors.Is(err, ErrNotFound) {
		return p, err
	}
	r, found, rerr := s.reservations.Get(ctx, orderID)
	if rerr != nil {
		return Payment{}, rerr
	}
	if !found {
		return Payment{}, err
	}
	p = seed(r.Created())
	p.Status = StatusPending
	return p, nil
}

// Pay takes the payment of orderID if its pay deadline has not passed:
// pending -> paid, with the paid event in the same transaction. Paying a paid
// payment succeeds again. After the deadline the order is expired right here
// and the pay refused (ErrClosed), as it is when inventory refused the order.
// The order is payable from its 202 on: a missing row is made from the
// reservation. ErrNotFound when the order was never accepted.
func (s *Service) Pay(ctx context.Context, orderID string) (Payment, error) {
	r, found, rerr := s.reservations.Get(ctx, orderID)
	var seeds []Payment
	if found {
		seeds = []Payment{seed(r.Created())}
	}
	outs, err := s.store.update(ctx, nil, seeds, []string{orderID}, payNow)
	if err != nil {
		return Payment{}, fmt.Errorf("pay %s: %w", orderID, err)
	}
	o := outs[orderID]
	log := s.log.With("order_id", orderID)
	switch {
	case o.noRow && rerr != nil:
		return Payment{}, rerr
	case o.noRow:
		return Payment{}, fmt.Errorf("order %s: %w", orderID, ErrNotFound)
	}
	if o.result != "" {
		s.metrics.count(o.result)
	}
	switch o.result {
	case resultPaid:
		// Payable since the 202 when the reservation served it; else since
		// a created or timeout event brought the order here.
		since := o.CreatedAt
		if found {
			since = r.CreatedAt
		}
		if o.AcceptedAt != nil {
			s.metrics.payable.Observe(max(0, since.Sub(*o.AcceptedAt).Seconds()))
		}
		log.InfoContext(ctx, "payment paid", "amount_cents", o.AmountCents, "pay_deadline", o.Deadline())
	case resultLate:
		log.InfoContext(ctx, "pay refused: pay deadline passed; order expired", "pay_deadline", o.Deadline())
	case resultRejected:
		log.InfoContext(ctx, "pay refused: order closed", "status", o.Status)
	}
	return o.Payment, o.err
}

// Sweeper expires pending payments whose deadline passed more than grace
// ago: their pay timeout was lost or is badly late (the delayed message is
// the mechanism; this catches what it missed).
type Sweeper struct {
	h        *Handler
	grace    time.Duration
	interval time.Duration
	batch    int
}

// NewSweeper returns a sweeper passing every interval, up to 500 orders a pass.
func NewSweeper(h *Handler, grace, interval time.Duration) *Sweeper {
	return &Sweeper{h: h, grace: grace, interval: interval, batch: 500}
}

// Run sweeps until ctx is done; it returns nil then.
func (s *Sweeper) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.h.log.WarnContext(ctx, "sweep overdue payments", "err", err)
		}
	}
}

// SweepOnce expires the overdue payments of one pass and reports how many.
func (s *Sweeper) SweepOnce(ctx context.Context) (int, error) {
	ids, err := s.h.store.due(ctx, s.grace, s.batch)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	outs, err := s.h.store.update(ctx, nil, nil, ids, expire)
	if err != nil {
		return 0, fmt.Errorf("expire %d overdue payments: %w", len(ids), err)
	}
	s.h.countExpired(ctx, s.h.log.With("sweeper", true), outs)
	n := 0
	for _, o := range outs {
		if o.result == resultExpired {
			n++
		}
	}
	return n, nil
}
