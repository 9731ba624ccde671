package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
)

// Monitor samples the outbox stream: how many accepted orders are not yet in
// the broker and how old the oldest of them is. Senders delete an entry once
// the broker stored its message, so the stream's first entry is the oldest
// accepted order still waiting; its ID carries the millisecond it was added.
// The gauges order_outbox_length and order_outbox_oldest_age_seconds show it,
// and OldestAge lets intake refuse orders it cannot hand on.
type Monitor struct {
	rdb    redis.UniversalClient
	stream string
	every  time.Duration
	log    *slog.Logger
	now    func() time.Time

	length, oldestAge prometheus.Gauge
	ageMS             atomic.Int64 // last sampled age of the oldest entry, ms
}

// NewMonitor returns a Monitor of stream ("" = events.OutboxStream) that
// samples every interval; reg receives its gauges.
func NewMonitor(rdb redis.UniversalClient, stream string, interval time.Duration, log *slog.Logger, reg prometheus.Registerer) *Monitor {
	if stream == "" {
		stream = events.OutboxStream
	}
	m := &Monitor{
		rdb: rdb, stream: stream, every: interval, log: log, now: time.Now,
		length: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "order_outbox_length", Help: "Accepted orders in the outbox stream, not yet stored by the broker.",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "order_outbox_oldest_age_seconds", Help: "Age of the oldest accepted order not yet stored by the broker (0 when the outbox is empty).",
		}),
	}
	reg.MustRegister(m.length, m.oldestAge)
	return m
}

// Run samples until ctx is done; it returns nil then.
func (m *Monitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.every)
	defer t.Stop()
	for {
		if err := m.Sample(ctx); err != nil && ctx.Err() == nil {
			m.log.WarnContext(ctx, "sample outbox", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sample reads the stream's length and first entry once and updates the
// gauges and OldestAge.
func (m *Monitor) Sample(ctx context.Context) error {
	pipe := m.rdb.Pipeline()
	n := pipe.XLen(ctx, m.stream)
	first := pipe.XRangeN(ctx, m.stream, "-", "+", 1)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("read outbox %s: %w", m.stream, err)
	}
	var age time.Duration
	if es := first.Val(); len(es) > 0 {
		ms, err := strconv.ParseInt(strings.SplitN(es[0].ID, "-", 2)[0], 10, 64)
		if err != nil {
			return fmt.Errorf("outbox entry id %q: %w", es[0].ID, err)
		}
		age = max(0, m.now().Sub(time.UnixMilli(ms)))
	}
	m.length.Set(float64(n.Val()))
	m.oldestAge.Set(age.Seconds())
	m.ageMS.Store(age.Milliseconds())
	return nil
}

// OldestAge is the age of the oldest waiting entry at the last sample.
func (m *Monitor) OldestAge() time.Duration {
	return time.Duration(m.ageMS.Load()) * time.Millisecond
}
