package payment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/gather"
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

// Read returns the reservations Redis has of orderIDs, by order ID (one
// pipelined round trip).
func (rs *Reservations) Read(ctx context.Context, orderIDs []string) (map[string]events.Reservation, error) {
	out := make(map[string]events.Reservation, len(orderIDs))
	_, err := rs.each(ctx, orderIDs, func(r events.Reservation) { out[r.OrderID] = r })
	return out, err
}

// Seeds returns the payment rows of the orders whose reservation Redis has.
func (rs *Reservations) Seeds(ctx context.Context, orderIDs []string) ([]Payment, error) {
	got, err := rs.Read(ctx, orderIDs)
	seeds := make([]Payment, 0, len(got))
	for _, id := range orderIDs {
		if r, ok := got[id]; ok {
			seeds = append(seeds, seed(r.Created()))
		}
	}
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
	pays         *gather.Group[*payCall]
}

// payCall is one pay request in a group of concurrent ones.
type payCall struct {
	orderID string
	p       Payment
	err     error
}

// maxPayGroup bounds the pays decided in one transaction.
const maxPayGroup = 64

// NewService returns a Service deciding through store and reading the
// intake's reservations.
func NewService(store *Store, reservations *Reservations, log *slog.Logger, metrics *Metrics) *Service {
	s := &Service{store: store, reservations: reservations, log: log, metrics: metrics}
	s.pays = gather.New(maxPayGroup, 0, s.payGroup)
	return s
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
//
// Pays that arrive while others are being decided are decided together: one
// Redis pipeline for their reservations and one Store.update (a handful of
// statements) for all of them, as a batch of consumed events is: at the peak
// of a sale thousands of buyers pay within seconds.
func (s *Service) Pay(ctx context.Context, orderID string) (Payment, error) {
	c := &payCall{orderID: orderID}
	if err := s.pays.Do(ctx, c); err != nil {
		return Payment{}, fmt.Errorf("pay %s: %w", orderID, err)
	}
	return c.p, c.err
}

// payGroup decides the pays of calls in one update; should that fail, each
// is decided alone (one failing row must not fail the others).
func (s *Service) payGroup(ctx context.Context, calls []*payCall) {
	ids := make([]string, 0, len(calls))
	for _, c := range calls {
		ids = append(ids, c.orderID)
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	rs, rerr := s.reservations.Read(ctx, ids)
	var seeds []Payment
	for _, r := range rs {
		seeds = append(seeds, seed(r.Created()))
	}
	outs, err := s.store.update(ctx, nil, seeds, ids, payNow)
	if err != nil && len(calls) > 1 {
		for _, c := range calls {
			s.payGroup(ctx, []*payCall{c})
		}
		return
	}
	decided := make(map[string]bool, len(ids))
	for _, c := range calls {
		o, ok := outs[c.orderID]
		switch {
		case err != nil:
			c.err = fmt.Errorf("pay %s: %w", c.orderID, err)
		case !ok || o.noRow && rerr != nil:
			c.err = rerr
		case o.noRow:
			c.err = fmt.Errorf("order %s: %w", c.orderID, ErrNotFound)
		default:
			c.p, c.err = o.Payment, o.change.err
			if !decided[c.orderID] { // the same order twice in a group: one decision
				decided[c.orderID] = true
				_, fromReservation := rs[c.orderID]
				s.record(ctx, o, fromReservation)
			}
		}
	}
}

// record counts and logs one pay decision.
func (s *Service) record(ctx context.Context, o outcome, fromReservation bool) {
	if o.result != "" {
		s.metrics.count(o.result)
	}
	log := s.log.With("order_id", o.OrderID)
	switch o.result {
	case resultPaid:
		// Payable since the 202 when the reservation served it; else since
		// a created or timeout event brought the order here.
		since := o.CreatedAt
		if fromReservation && o.AcceptedAt != nil {
			since = *o.AcceptedAt
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
