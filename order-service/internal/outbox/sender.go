// Package outbox drains the Redis outbox stream the reservation script appends
// to: sender goroutines read entries in batches through a consumer group, send
// each batch to the broker as created messages with one delayed pay timeout,
// then XACK and XDEL them. Entries a dead sender had read are reclaimed with
// XAUTOCLAIM. In batch and sync modes the requests hand their orders on
// themselves and delete their entries (Deleter); the sender then only sweeps
// up entries older than Options.MinAge, whose hand-off failed.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Options configure a Sender. Zero values take the defaults.
type Options struct {
	Stream   string        // default events.OutboxStream
	Group    string        // Redis consumer group; default "order-outbox"
	Consumer string        // this process's consumer name prefix (required: unique per process)
	Senders  int           // goroutines; default 2
	Count    int64         // entries per read and per batch; default 64
	Block    time.Duration // XREADGROUP BLOCK; default 100 ms
	// Linger is how long a sender waits after a batch smaller than Count
	// before it reads again, so the next batch gathers more entries: one
	// read, one broker send and one ack per batch cost the same for 5
	// entries as for 60. Default 5 ms; a reservation reaches the broker at
	// most that much later (the client already has its 202).
	Linger     time.Duration
	MinIdle    time.Duration // reclaim entries idle this long; default 10 s
	Reclaim    time.Duration // reclaim period; default 5 s
	Drain      time.Duration // how long Run keeps sending after ctx is done; default 5 s
	MaxBackoff time.Duration // default 2 s
	// MinAge > 0 is the batch and sync modes' sweep: the intake hands
	// orders on itself and deletes their entries, so the sender reads no
	// new entry through the group; it sends only what has waited longer
	// than MinAge (a failed hand-off, or a process that died before it),
	// and everything left once intake has stopped.
	MinAge time.Duration
	// TimeoutLevel is the delay level of the pay timeout each batch sends
	// with its created events (required: 1..18).
	TimeoutLevel int
}

// Sender drains the outbox.
type Sender struct {
	rdb      redis.UniversalClient
	producer *mq.Producer
	log      *slog.Logger
	opts     Options
	sent     *prometheus.CounterVec
}

// New returns a Sender; reg receives order_outbox_entries_total{result}.
func New(rdb redis.UniversalClient, producer *mq.Producer, opts Options, log *slog.Logger, reg prometheus.Registerer) *Sender {
	if opts.Stream == "" {
		opts.Stream = events.OutboxStream
	}
	if opts.Group == "" {
		opts.Group = "order-outbox"
	}
	if opts.Senders <= 0 {
		opts.Senders = 2
	}
	if opts.Count <= 0 {
		opts.Count = 64
	}
	if opts.Block <= 0 {
		opts.Block = 100 * time.Millisecond
	}
	if opts.Linger <= 0 {
		opts.Linger = 5 * time.Millisecond
	}
	if opts.MinIdle <= 0 {
		opts.MinIdle = 10 * time.Second
	}
	if opts.Reclaim <= 0 {
		opts.Reclaim = 5 * time.Second
	}
	if opts.Drain <= 0 {
		opts.Drain = 5 * time.Second
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 2 * time.Second
	}
	s := &Sender{rdb: rdb, producer: producer, log: log.With("stream", opts.Stream), opts: opts,
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "order_outbox_entries_total", Help: "Outbox entries handled: sent to the broker, or dropped as malformed.",
		}, []string{"result"})}
	reg.MustRegister(s.sent)
	return s
}

// Init creates the consumer group (from the start of the stream, so entries
// added before it existed are sent too).
func (s *Sender) Init(ctx context.Context) error {
	err := s.rdb.XGroupCreateMkStream(ctx, s.opts.Stream, s.opts.Group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create outbox group %s on %s: %w", s.opts.Group, s.opts.Stream, err)
	}
	return nil
}

// Run sends until ctx is done, then keeps sending what is already in the
// stream for up to Options.Drain (intake has stopped by then), and returns.
func (s *Sender) Run(ctx context.Context) error {
	// Sends outlive ctx by the drain period: the HTTP server is shut down
	// first, so what is left in the stream is finite.
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	if err := s.Init(sendCtx); err != nil {
		return err
	}
	stopTimer := context.AfterFunc(ctx, func() { time.AfterFunc(s.opts.Drain, cancel) })
	defer stopTimer()

	g, gctx := errgroup.WithContext(sendCtx)
	if s.opts.MinAge > 0 {
		// One sweeper: two would send the same entries twice.
		g.Go(func() error { s.sweepLoop(gctx, ctx); return nil })
		return g.Wait()
	}
	for i := range s.opts.Senders {
		name := fmt.Sprintf("%s-%d", s.opts.Consumer, i)
		g.Go(func() error { s.loop(gctx, ctx, name); return nil })
	}
	g.Go(func() error { s.reclaimLoop(gctx, ctx); return nil })
	return g.Wait()
}

// loop reads and sends batches. After an error it re-reads its own pending
// entries ("0") before new ones (">"), so nothing it read is skipped. Once
// intake (ctx) is done it stops when a read comes back empty.
func (s *Sender) loop(sendCtx, intake context.Context, consumer string) {
	backoff := firstBackoff
	pendingFirst := true
	for sendCtx.Err() == nil {
		id := ">"
		if pendingFirst {
			id = "0"
		}
		block := s.opts.Block
		if intake.Err() != nil {
			block = -1 // no BLOCK while draining
		}
		res, err := s.rdb.XReadGroup(sendCtx, &redis.XReadGroupArgs{
			Group: s.opts.Group, Consumer: consumer, Streams: []string{s.opts.Stream, id},
			Count: s.opts.Count, Block: block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			err, res = nil, nil
		}
		if err == nil {
			var entries []redis.XMessage
			for _, st := range res {
				entries = append(entries, st.Messages...)
			}
			if len(entries) == 0 {
				if pendingFirst {
					pendingFirst = false
					continue
				}
				if intake.Err() != nil {
					return // drained
				}
				continue
			}
			err = s.Send(sendCtx, entries)
			if err == nil && int64(len(entries)) < s.opts.Count && intake.Err() == nil {
				select {
				case <-sendCtx.Done():
				case <-intake.Done():
				case <-time.After(s.opts.Linger):
				}
			}
		}
		if err != nil {
			if sendCtx.Err() != nil {
				return
			}
			if strings.HasPrefix(err.Error(), "NOGROUP") {
				// The stream (and its group) vanished, e.g. Redis restarted empty.
				if ierr := s.Init(sendCtx); ierr != nil {
					err = errors.Join(err, ierr)
				}
			}
			s.log.WarnContext(sendCtx, "outbox send failed; retrying", "consumer", consumer, "err", err, "backoff", backoff)
			pendingFirst = true
			if !s.backOff(sendCtx, &backoff) {
				return
			}
			continue
		}
		backoff = firstBackoff
	}
}

// firstBackoff is the wait after a first failed send; each failure in a row
// doubles it up to Options.MaxBackoff.
const firstBackoff = 50 * time.Millisecond

// backOff waits *d after a failure (false: ctx ended first) and doubles *d
// for the next one, up to Options.MaxBackoff.
func (s *Sender) backOff(ctx context.Context, d *time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(*d):
	}
	*d = min(2**d, s.opts.MaxBackoff)
	return true
}

// sweepLoop sends entries older than MinAge until intake (ctx) is done,
// then every entry left, and returns when the stream is empty.
func (s *Sender) sweepLoop(sendCtx, intake context.Context) {
	backoff := firstBackoff
	pause := min(s.opts.MinAge/4, time.Second)
	for sendCtx.Err() == nil {
		age := s.opts.MinAge
		if intake.Err() != nil {
			age = 0
		}
		n, err := s.SweepOnce(sendCtx, age)
		switch {
		case err != nil:
			if sendCtx.Err() != nil {
				return
			}
			s.log.WarnContext(sendCtx, "outbox sweep failed; retrying", "err", err, "backoff", backoff)
			if !s.backOff(sendCtx, &backoff) {
				return
			}
			continue
		case n == 0 && intake.Err() != nil:
			return // drained
		case n > 0:
			backoff = firstBackoff
			continue // there may be more
		}
		select {
		case <-sendCtx.Done():
			return
		case <-intake.Done():
		case <-time.After(pause):
		}
	}
}

// SweepOnce sends up to Count entries older than minAge (every entry when
// minAge is 0) and returns how many it sent.
func (s *Sender) SweepOnce(ctx context.Context, minAge time.Duration) (int, error) {
	end := "+"
	if minAge > 0 {
		end = strconv.FormatInt(time.Now().Add(-minAge).UnixMilli(), 10)
	}
	entries, err := s.rdb.XRangeN(ctx, s.opts.Stream, "-", end, s.opts.Count).Result()
	if err != nil {
		return 0, fmt.Errorf("read outbox %s: %w", s.opts.Stream, err)
	}
	if len(entries) == 0 {
		return 0, nil
	}
	s.log.InfoContext(ctx, "sending outbox entries whose hand-off failed", "entries", len(entries), "first_order_id", firstOrderID(entries))
	if err := s.Send(ctx, entries); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// reclaimLoop takes over entries another (dead) sender read but never acked.
func (s *Sender) reclaimLoop(sendCtx, intake context.Context) {
	consumer := s.opts.Consumer + "-reclaim"
	t := time.NewTicker(s.opts.Reclaim)
	defer t.Stop()
	for {
		if _, err := s.ReclaimOnce(sendCtx, consumer); err != nil && sendCtx.Err() == nil {
			s.log.WarnContext(sendCtx, "outbox reclaim failed", "err", err)
		}
		select {
		case <-intake.Done():
			return
		case <-sendCtx.Done():
			return
		case <-t.C:
		}
	}
}

// ReclaimOnce claims entries idle longer than MinIdle for consumer and sends
// them; it returns how many it sent.
func (s *Sender) ReclaimOnce(ctx context.Context, consumer string) (int, error) {
	start, n := "0-0", 0
	for {
		entries, next, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: s.opts.Stream, Group: s.opts.Group, Consumer: consumer,
			MinIdle: s.opts.MinIdle, Start: start, Count: s.opts.Count,
		}).Result()
		if err != nil {
			return n, fmt.Errorf("xautoclaim %s: %w", s.opts.Stream, err)
		}
		if len(entries) > 0 {
			s.log.InfoContext(ctx, "reclaimed outbox entries of a dead sender", "entries", len(entries))
			if err := s.Send(ctx, entries); err != nil {
				return n, err
			}
			n += len(entries)
		}
		if next == "0-0" || next == "" {
			return n, nil
		}
		start = next
	}
}

// Send hands entries on (Handoff: their created events and one pay timeout),
// then acks and deletes them. Malformed entries are logged, acked and deleted
// without a message.
func (s *Sender) Send(ctx context.Context, entries []redis.XMessage) error {
	rs := make([]stock.Reservation, 0, len(entries))
	ids := make([]string, 0, len(entries))
	var bad []string
	for _, e := range entries {
		r, err := parseEntry(e.Values)
		if err != nil {
			s.log.ErrorContext(ctx, "dropping malformed outbox entry", "entry_id", e.ID, "entry", e.Values, "err", err)
			bad = append(bad, e.ID)
			continue
		}
		rs = append(rs, r)
		ids = append(ids, e.ID)
	}
	if err := Handoff(ctx, s.producer, rs, s.opts.TimeoutLevel); err != nil {
		return err
	}
	all := append(ids, bad...)
	if len(all) == 0 {
		return nil
	}
	pipe := s.rdb.TxPipeline()
	pipe.XAck(ctx, s.opts.Stream, s.opts.Group, all...)
	pipe.XDel(ctx, s.opts.Stream, all...)
	if _, err := pipe.Exec(ctx); err != nil {
		// The messages are in the broker; the entries will be sent again and
		// consumers deduplicate on the event ID.
		return fmt.Errorf("ack %d outbox entries: %w", len(all), err)
	}
	s.log.DebugContext(ctx, "outbox batch sent", "entries", len(ids), "first_order_id", firstOrderID(entries))
	s.sent.WithLabelValues("sent").Add(float64(len(ids)))
	s.sent.WithLabelValues("malformed").Add(float64(len(bad)))
	return nil
}

// parseEntry reads an outbox entry (the fields of the reservation hash).
func parseEntry(values map[string]any) (stock.Reservation, error) {
	fields := make(map[string]string, len(values))
	for k, v := range values {
		str, ok := v.(string)
		if !ok {
			return stock.Reservation{}, fmt.Errorf("field %s is %T", k, v)
		}
		fields[k] = str
	}
	return stock.ParseFields(fields)
}

// Handoff hands reservations accepted together to the broker: their created
// events in one batch send, then one pay-timeout message listing them all
// (their IDs: ~40 bytes an order, no compression), delayed by timeoutLevel (a batch send would drop the delay). The
// timeout leaves at acceptance, not after some consumer's backlog, so it
// arrives at the orders' pay deadline whatever the backlog. Every send mode
// of the intake (this sender, batch and sync) hands orders on through it.
// An error means some may be in the broker already: resending is safe
// (consumers deduplicate on the event ID; a second timeout decides nothing).
func Handoff(ctx context.Context, p *mq.Producer, rs []stock.Reservation, timeoutLevel int) error {
	if len(rs) == 0 {
		return nil
	}
	created := make([]mq.Outgoing, len(rs))
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.OrderID
		created[i] = orderMessage(events.TagCreated, r.OrderID, r.Created())
	}
	if err := p.SendBatch(ctx, created); err != nil {
		return fmt.Errorf("send %d created messages: %w", len(created), err)
	}
	timeout := orderMessage(events.TagTimeout, rs[0].OrderID, events.Timeout(ids))
	timeout.DelayLevel = timeoutLevel
	if _, err := p.SendSync(ctx, timeout); err != nil {
		return fmt.Errorf("send the pay timeout of %d orders: %w", len(rs), err)
	}
	return nil
}

func orderMessage(tag, orderID string, ev any) mq.Outgoing {
	return mq.Outgoing{
		Topic: events.TopicOrder, Tag: tag, Keys: []string{orderID}, ShardingKey: orderID, Body: events.Marshal(ev),
	}
}

func firstOrderID(entries []redis.XMessage) any {
	if len(entries) == 0 {
		return ""
	}
	return entries[0].Values["order_id"]
}
