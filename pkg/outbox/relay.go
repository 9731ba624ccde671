package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/mq"
)

// Send modes of a Relay.
const (
	// ModeBatch sends the rows of a pass in as few batch sends as possible
	// (one per queue); delayed rows go one by one (a batch drops delays).
	ModeBatch = "batch"
	// ModeAsync sends every row with an asynchronous send and deletes the
	// rows whose callback reported success; the others stay for the next
	// pass.
	ModeAsync = "async"
)

// Options configure a Relay. Zero values take the defaults.
type Options struct {
	Mode       string        // ModeBatch (default) or ModeAsync
	Batch      int           // rows per pass; default 64
	Poll       time.Duration // pass at least this often without Notify; default 1 s
	MaxBackoff time.Duration // after failed passes; default 5 s
	Drain      time.Duration // how long Run keeps relaying after ctx is done; default 3 s
}

// Sender is what a Relay sends through (*mq.Producer).
type Sender interface {
	SendBatch(ctx context.Context, ms []mq.Outgoing) error
	SendSync(ctx context.Context, m mq.Outgoing) (mq.SendResult, error)
	SendAsync(ctx context.Context, m mq.Outgoing, done func(mq.SendResult, error)) error
}

// Relay moves committed outbox rows to the broker, oldest first. Run it once
// per process; of the replicas sharing a database one relays at a time (it
// holds a database lock, GET_LOCK, while it leads; the others wait to take
// over), so rows go out in the order they were written and no two relays
// send the same row.
type Relay struct {
	db    *gorm.DB
	send  Sender
	opts  Options
	log   *slog.Logger
	wake  chan struct{}
	sent  *prometheus.CounterVec
	age   prometheus.Gauge
	clock func() time.Time
}

// NewRelay returns a Relay of gdb's outbox through send; reg receives
// <service>_db_outbox_relayed_total{result} and <service>_db_outbox_oldest_age_seconds.
func NewRelay(gdb *gorm.DB, send Sender, service string, opts Options, log *slog.Logger, reg prometheus.Registerer) *Relay {
	if opts.Mode == "" {
		opts.Mode = ModeBatch
	}
	if opts.Batch <= 0 {
		opts.Batch = 64
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	if opts.Drain <= 0 {
		opts.Drain = 3 * time.Second
	}
	r := &Relay{
		db: gdb, send: send, opts: opts, log: log.With("component", "outbox"), wake: make(chan struct{}, 1),
		clock: func() time.Time { return time.Now().UTC() },
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: service + "_db_outbox_relayed_total",
			Help: "Outbox rows handed to the broker (sent) or left for a later pass after a failed send (failed).",
		}, []string{"result"}),
		age: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: service + "_db_outbox_oldest_age_seconds",
			Help: "Age of the oldest event in the database outbox at the last pass (0 when empty).",
		}),
	}
	r.sent.WithLabelValues("sent")
	r.sent.WithLabelValues("failed")
	reg.MustRegister(r.sent, r.age)
	return r
}

// Notify wakes the relay for a pass; call it after committing rows. It never
// blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx is done, then keeps relaying what is committed for up
// to Options.Drain (the consumers that write rows stop before it), and
// returns nil. Rows left then are relayed by the next start. It relays only
// while it leads (see Relay); otherwise it tries to take over every Poll.
func (r *Relay) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		release, err := r.lead(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "outbox relay: take the lead", "err", err)
		}
		if release != nil {
			r.relay(ctx)
			release()
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.opts.Poll):
		}
	}
	return nil
}

// lead takes the relay lock of this database; nil release when another
// relay holds it.
func (r *Relay) lead(ctx context.Context) (release func(), err error) {
	sqlDB, err := r.db.DB()
	if err != nil {
		return nil, err
	}
	conn, err := sqlDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(CONCAT('outbox_relay:', DATABASE()), 0)").Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("get relay lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, nil
	}
	// Closing the session releases the lock (as does losing it: another
	// relay may then take over while this one still sends; rows may go out
	// twice, never not at all).
	return func() { conn.Close() }, nil
}

// relay passes until ctx is done, then drains.
func (r *Relay) relay(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		n, err := r.Pass(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.log.WarnContext(ctx, "outbox relay failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, r.opts.MaxBackoff)
			continue
		case n == r.opts.Batch:
			continue // more waiting
		}
		backoff = 100 * time.Millisecond
		select {
		case <-ctx.Done():
		case <-r.wake:
		case <-time.After(r.opts.Poll):
		}
	}
	drainCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Drain)
	defer cancel()
	for drainCtx.Err() == nil {
		n, err := r.Pass(drainCtx)
		if err != nil {
			r.log.WarnContext(drainCtx, "outbox not drained at shutdown; the next start relays the rest", "err", err)
			return
		}
		if n == 0 {
			return
		}
	}
}

// Pass relays up to Options.Batch of the oldest rows and reports how many
// the broker stored (and were deleted). Only the leading relay passes (Run);
// tests call it directly.
func (r *Relay) Pass(ctx context.Context) (int, error) {
	db := r.db.WithContext(ctx)
	var rows []row
	if err := db.Order("id").Limit(r.opts.Batch).Find(&rows).Error; err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	if len(rows) == 0 {
		r.age.Set(0)
		return 0, nil
	}
	r.age.Set(max(0, r.clock().Sub(rows[0].CreatedAt).Seconds()))
	done, err := r.deliver(ctx, rows)
	r.sent.WithLabelValues("failed").Add(float64(len(rows) - len(done)))
	if len(done) == 0 {
		return 0, err
	}
	if derr := db.Where("id IN ?", done).Delete(&row{}).Error; derr != nil {
		// Stored but not deleted: the next pass sends them again.
		return 0, errors.Join(err, fmt.Errorf("delete %d relayed rows: %w", len(done), derr))
	}
	r.sent.WithLabelValues("sent").Add(float64(len(done)))
	return len(done), err
}

// deliver sends rows and returns the IDs of those the broker stored. An
// error means some were not (they are sent again by a later pass).
func (r *Relay) deliver(ctx context.Context, rows []row) ([]int64, error) {
	if r.opts.Mode == ModeAsync {
		return r.deliverAsync(ctx, rows)
	}
	var (
		now  []mq.Outgoing
		ids  []int64
		done []int64
	)
	for _, rw := range rows {
		if rw.DelayLevel > 0 {
			if _, err := r.send.SendSync(ctx, rw.message()); err != nil {
				return done, fmt.Errorf("send delayed %s/%s key %s: %w", rw.Topic, rw.Tag, rw.MsgKey, err)
			}
			done = append(done, rw.ID)
			continue
		}
		now = append(now, rw.message())
		ids = append(ids, rw.ID)
	}
	if len(now) > 0 {
		if err := r.send.SendBatch(ctx, now); err != nil {
			return done, fmt.Errorf("send %d outbox messages: %w", len(now), err)
		}
		done = append(done, ids...)
	}
	return done, nil
}

func (r *Relay) deliverAsync(ctx context.Context, rows []row) ([]int64, error) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done []int64
		errs []error
	)
	for _, rw := range rows {
		wg.Add(1)
		err := r.send.SendAsync(ctx, rw.message(), func(_ mq.SendResult, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			done = append(done, rw.ID)
		})
		if err != nil {
			wg.Done()
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	wg.Wait()
	return done, errors.Join(errs...)
}
