package stock

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

var (
	//go:embed restore_info.lua
	restoreInfoLua string
	//go:embed rebuild_take.lua
	rebuildTakeLua string
	//go:embed rebuild_lock.lua
	rebuildLockLua string
	//go:embed rebuild_finish.lua
	rebuildFinishLua string
	//go:embed reset.lua
	resetLua string
	//go:embed certify.lua
	certifyLua string

	restoreInfoScript   = redis.NewScript(restoreInfoLua)
	rebuildTakeScript   = redis.NewScript(rebuildTakeLua)
	rebuildLockScript   = redis.NewScript(rebuildLockLua)
	rebuildFinishScript = redis.NewScript(rebuildFinishLua)
	resetScript         = redis.NewScript(resetLua)
	certifyScript       = redis.NewScript(certifyLua)
)

// errLockLost: the rebuild's lock is gone: a sale start deleted it (and wrote
// the stock itself), it expired and another replica took over, or Redis lost
// its data again.
var errLockLost = errors.New("stock rebuild lock lost")

// usersPerWrite bounds the per-user counts written in one HSET.
const usersPerWrite = 500

// RebuildOptions tune a Rebuilder. Zero values take the defaults.
type RebuildOptions struct {
	// Interval is how often every product's keys are checked, and how often
	// a rebuild renews its lock and polls the broker; default 1 s.
	Interval time.Duration
	// Grace is how long a rebuild waits after the loss is seen before it
	// records the broker's offsets, for created events whose send began
	// before the loss (a sync send with its retries); default 10 s, the
	// producer's 3 attempts of 3 s and a margin.
	Grace time.Duration
	// LockTTL is the rebuild lock's lifetime, renewed every Interval: a
	// crashed replica's rebuild is taken over this long after. Default 10 s,
	// and at least 3 Intervals.
	LockTTL time.Duration
	// Loaded is the marker key set to Redis's run_id once every product
	// has its info in Redis (and, after a restart, its stock dropped for a
	// rebuild); default events.LoadedKey.
	Loaded string
	// Outbox is order-service's outbox stream: a rebuild waits until the
	// orders it held when the loss was seen are handed on; default
	// events.OutboxStream.
	Outbox string
}

// Rebuilder notices that Redis lost a product's keys (Redis restarted empty)
// and rebuilds them from the database, the truth:
//
//  1. The product's info hash goes back at once, with the stock key still
//     missing: order-service refuses the product (503, retry later) instead
//     of calling it unknown. The loaded marker goes back after every product's
//     info, so while it is missing order-service calls no product unknown.
//  2. The rebuild takes a per-product lock in Redis (replicas rebuild each
//     product once), waits Options.Grace, records the end of every ORDER
//     queue and waits until GID-inventory has consumed and committed
//     everything below it: every order reserved before the loss whose
//     created event reached the broker is then deducted in the database.
//  3. It reads sold and the per-user units of the current sale in one
//     transaction (which also marks the sale's releases as given back in
//     Redis, because the rebuilt stock includes them), broadcasts the
//     sold-out flag, and finally writes the per-user counts, the stock
//     (stock - sold) and a new generation in one script, if it still holds
//     the lock.
//
// What Redis alone held cannot be rebuilt: outbox entries not yet sent and
// idempotency keys (see docs/design.md).
type Rebuilder struct {
	store    *Store
	rdb      redis.UniversalClient
	producer *mq.Producer
	backlog  *Backlog
	metrics  *Metrics
	log      *slog.Logger
	opts     RebuildOptions

	mu      sync.Mutex
	running map[string]bool // products this process is rebuilding
}

// NewRebuilder returns a Rebuilder reading store and backlog and writing rdb
// and the SOLDOUT broadcast through producer.
func NewRebuilder(store *Store, rdb redis.UniversalClient, producer *mq.Producer, backlog *Backlog, m *Metrics, log *slog.Logger, opts RebuildOptions) *Rebuilder {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.LockTTL <= 0 {
		opts.LockTTL = 10 * time.Second
	}
	opts.LockTTL = max(opts.LockTTL, 3*opts.Interval)
	if opts.Loaded == "" {
		opts.Loaded = events.LoadedKey
	}
	if opts.Outbox == "" {
		opts.Outbox = events.OutboxStream
	}
	return &Rebuilder{store: store, rdb: rdb, producer: producer, backlog: backlog, metrics: m, log: log,
		opts: opts, running: map[string]bool{}}
}

// Check compares Redis with the database once: it puts back the info hash of
// every product that lost it and returns the products whose stock key is
// missing (their stock needs a rebuild). When the loaded marker does not
// name the running Redis (its run_id changes at every start), Redis
// restarted, maybe from an append-only file without its last second, or
// lost its data: Check then drops every product's stock (reset) and
// returns them all, so each is rebuilt as after a loss.
func (r *Rebuilder) Check(ctx context.Context) ([]Product, error) {
	ps, err := r.store.Products(ctx)
	if err != nil {
		return nil, err
	}
	runID, err := r.runID(ctx)
	if err != nil {
		return nil, err
	}
	pipe := r.rdb.Pipeline()
	marker := pipe.Get(ctx, r.opts.Loaded)
	infos := make([]*redis.IntCmd, len(ps))
	stocks := make([]*redis.IntCmd, len(ps))
	for i, p := range ps {
		infos[i] = pipe.Exists(ctx, events.InfoKey(p.ProductID))
		stocks[i] = pipe.Exists(ctx, events.StockKey(p.ProductID))
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	if err := marker.Err(); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read %s: %w", r.opts.Loaded, err)
	}
	for i := range ps {
		if err := errors.Join(infos[i].Err(), stocks[i].Err()); err != nil {
			return nil, fmt.Errorf("check redis keys of %d products: %w", len(ps), err)
		}
	}
	if marker.Val() != runID {
		return r.reset(ctx, ps, runID, marker.Val())
	}
	var missing []Product
	for i, p := range ps {
		if infos[i].Val() == 0 {
			if err := r.restoreInfo(ctx, p); err != nil {
				return nil, err
			}
		}
		if stocks[i].Val() == 0 {
			missing = append(missing, p)
		}
	}
	return missing, nil
}

// reset handles a Redis of another run than the loaded marker names: one
// that restarted (what it kept may miss the last second of writes: stock
// and per-user counts of orders already handed on, so its counts cannot be
// trusted) or lost everything. The marker and every product's stock and
// rebuild lock go in one script (reset.lua: orders stop, a rebuild under
// way publishes nothing), missing info comes back, and the marker is set
// to the new run: each product then takes orders again once its rebuild
// from the database published it. When another replica reset first, the
// next check finds the marker current.
func (r *Rebuilder) reset(ctx context.Context, ps []Product, runID, was string) ([]Product, error) {
	keys := make([]string, 0, 1+2*len(ps))
	keys = append(keys, r.opts.Loaded)
	for _, p := range ps {
		keys = append(keys, events.StockKey(p.ProductID), lockKey(p.ProductID))
	}
	dropped, err := resetScript.Run(ctx, r.rdb, keys, runID).Int()
	if err != nil {
		return nil, fmt.Errorf("drop the redis stock of %d products: %w", len(ps), err)
	}
	if dropped == 0 {
		return nil, nil
	}
	r.log.WarnContext(ctx, "redis restarted or lost its data; every product's stock is rebuilt from the database",
		"run_id", runID, "loaded_marker", was, "products", len(ps))
	for _, p := range ps {
		if err := r.restoreInfo(ctx, p); err != nil {
			return nil, err
		}
	}
	set, err := certifyScript.Run(ctx, r.rdb, []string{r.opts.Loaded}, runID).Int()
	if err != nil {
		return nil, fmt.Errorf("set %s: %w", r.opts.Loaded, err)
	}
	if set == 0 {
		return nil, fmt.Errorf("set %s: redis is not run %s any more (restarted again)", r.opts.Loaded, runID)
	}
	r.metrics.RedisResets.Inc()
	return ps, nil
}

// restoreInfo puts p's info hash (price, per-user limit, sale) back into
// Redis from the database (restore_info.lua; a hash present is kept).
func (r *Rebuilder) restoreInfo(ctx context.Context, p Product) error {
	err := restoreInfoScript.Run(ctx, r.rdb, []string{events.InfoKey(p.ProductID)}, p.PriceCents, p.PerUserLimit, p.SaleID).Err()
	if err != nil {
		return fmt.Errorf("restore redis info of %s: %w", p.ProductID, err)
	}
	return nil
}

// runID is the run_id of the Redis answering now.
func (r *Rebuilder) runID(ctx context.Context) (string, error) {
	info, err := r.rdb.Info(ctx, "server").Result()
	if err != nil {
		return "", fmt.Errorf("read redis run_id: %w", err)
	}
	for l := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "run_id:"); ok && v != "" {
			return v, nil
		}
	}
	return "", errors.New("read redis run_id: none in INFO server")
}

// Run checks every Interval and rebuilds each product Check reports, until
// ctx is done; it returns once the rebuilds it started have stopped.
func (r *Rebuilder) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		missing, err := r.Check(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "redis stock check failed; retrying", "err", err)
		}
		for _, p := range missing {
			if r.claim(p.ProductID) {
				wg.Go(func() {
					defer r.unclaim(p.ProductID)
					r.rebuild(ctx, p)
				})
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (r *Rebuilder) claim(productID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[productID] {
		return false
	}
	r.running[productID] = true
	return true
}

func (r *Rebuilder) unclaim(productID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, productID)
}

// rebuilt is what a finished rebuild reports.
type rebuilt struct {
	state  RebuildState
	behind int64         // messages below the snapshot not consumed when it was taken
	waited time.Duration // from the lock to the end of the wait for the broker
}

// rebuild rebuilds p's stock if no other rebuild holds its lock, and logs
// and counts the outcome.
func (r *Rebuilder) rebuild(ctx context.Context, p Product) {
	id := p.ProductID
	token := newToken()
	taken, err := rebuildTakeScript.Run(ctx, r.rdb, []string{lockKey(id), events.StockKey(id)}, token, r.opts.LockTTL.Milliseconds()).Int()
	if err != nil {
		if ctx.Err() == nil {
			r.log.WarnContext(ctx, "take the stock rebuild lock; retrying", "product_id", id, "err", err)
		}
		return
	}
	if taken == 0 {
		return // another replica is on it, or the stock is back
	}
	log := r.log.With("product_id", id, "sale_id", p.SaleID)
	log.WarnContext(ctx, "stock missing from redis; the product takes no orders until it is rebuilt from the database")
	r.metrics.Rebuilding.Inc()
	defer r.metrics.Rebuilding.Dec()
	start := time.Now()
	res, err := r.rebuildLocked(ctx, p, token, log)

	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err != nil {
		// The next check (here or on another replica) starts over at once.
		_ = rebuildLockScript.Run(cctx, r.rdb, []string{lockKey(id)}, token, 0).Err()
	}
	_ = r.rdb.Del(cctx, rebuildUsersKey(id, token)).Err()
	switch {
	case err == nil:
		r.metrics.Rebuilds.WithLabelValues("done").Inc()
		log.InfoContext(ctx, "stock rebuilt from the database",
			"stock", res.state.Product.Stock, "sold", res.state.Product.Sold, "available", res.state.Product.Available(),
			"users", len(res.state.Users), "releases_counted", res.state.Counted, "behind_at_snapshot", res.behind,
			"waited_ms", res.waited.Milliseconds(), "took_ms", time.Since(start).Milliseconds())
	case errors.Is(err, errLockLost), errors.Is(err, ErrSaleChanged):
		r.metrics.Rebuilds.WithLabelValues("cancelled").Inc()
		log.InfoContext(ctx, "stock rebuild cancelled", "reason", err.Error())
	case ctx.Err() != nil:
		r.metrics.Rebuilds.WithLabelValues("cancelled").Inc()
		log.InfoContext(ctx, "stock rebuild stopped by shutdown; another replica or the next start takes over")
	default:
		r.metrics.Rebuilds.WithLabelValues("failed").Inc()
		log.WarnContext(ctx, "stock rebuild failed; the next check starts it again", "err", err)
	}
}

// rebuildLocked runs the rebuild of p while token holds its lock.
func (r *Rebuilder) rebuildLocked(ctx context.Context, p Product, token string, log *slog.Logger) (rebuilt, error) {
	id := p.ProductID
	start := time.Now()
	// Orders accepted before the loss whose outbox entries Redis kept (a
	// restart from the append-only file keeps all but the last second) are
	// not in the broker until order-service hands them on: they count in
	// sold only once they are, and the snapshot must come after them. The
	// product's stock key is missing, so nothing newer is reserved for it.
	mark, err := r.newestOutboxEntry(ctx)
	if err != nil {
		return rebuilt{}, err
	}
	// A created event whose send began before the loss may not be in the
	// broker yet: the snapshot is taken once such sends are over.
	if err := r.hold(ctx, id, token, r.opts.Grace); err != nil {
		return rebuilt{}, err
	}
	if err := r.waitOutbox(ctx, id, token, mark, log); err != nil {
		return rebuilt{}, err
	}
	snap, err := r.backlog.Snapshot(ctx)
	if err != nil {
		return rebuilt{}, err
	}
	var res rebuilt
	res.behind = -1
	lastLog := time.Now()
	for {
		n, err := r.backlog.Behind(ctx, snap)
		if err == nil && res.behind < 0 {
			res.behind = n
		}
		if err == nil && n == 0 {
			break
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			if err != nil {
				log.WarnContext(ctx, "read the reserve group's progress; retrying", "err", err)
			} else {
				log.InfoContext(ctx, "stock rebuild waiting for the reserve group to consume what the broker held", "behind", n)
			}
		}
		if err := r.hold(ctx, id, token, r.opts.Interval); err != nil {
			return rebuilt{}, err
		}
	}
	res.waited = time.Since(start)

	res.state, err = r.store.ReadRebuildState(ctx, id, p.SaleID, func(ctx context.Context) error {
		// Inside the transaction: a sale start (which deletes the lock) that
		// came first must not see its releases marked by this stale rebuild.
		return r.renew(ctx, id, token)
	})
	if err != nil {
		return rebuilt{}, err
	}
	st := res.state
	if st.Units != st.Product.Sold {
		log.ErrorContext(ctx, "per-user units of the sale disagree with sold; the stock is rebuilt from sold",
			"units", st.Units, "sold", st.Product.Sold)
	}
	if err := r.writeUsers(ctx, id, token, st.Users); err != nil {
		return rebuilt{}, err
	}
	available := st.Product.Available()
	if err := sendSoldOut(ctx, r.producer, r.metrics, id, available <= 0); err != nil {
		return rebuilt{}, err
	}
	keys := []string{events.StockKey(id), events.UsersKey(id), rebuildUsersKey(id, token), genKey(id), lockKey(id)}
	done, err := rebuildFinishScript.Run(ctx, r.rdb, keys, token, available, newToken()).Int()
	switch {
	case err != nil:
		return rebuilt{}, fmt.Errorf("publish rebuilt stock of %s: %w", id, err)
	case done == 0:
		return rebuilt{}, fmt.Errorf("publish rebuilt stock of %s: %w", id, errLockLost)
	case done < 0:
		return rebuilt{}, fmt.Errorf("publish rebuilt stock of %s: stock key written by someone else: %w", id, errLockLost)
	}
	return res, nil
}

// newestOutboxEntry is the ID of the outbox's newest entry ("" when empty).
func (r *Rebuilder) newestOutboxEntry(ctx context.Context) (string, error) {
	es, err := r.rdb.XRevRangeN(ctx, r.opts.Outbox, "+", "-", 1).Result()
	if err != nil {
		return "", fmt.Errorf("read outbox %s: %w", r.opts.Outbox, err)
	}
	if len(es) == 0 {
		return "", nil
	}
	return es[0].ID, nil
}

// waitOutbox waits, keeping the lock, until no outbox entry up to mark is
// left: order-service deletes an entry once the broker stored its order.
func (r *Rebuilder) waitOutbox(ctx context.Context, productID, token, mark string, log *slog.Logger) error {
	if mark == "" {
		return nil
	}
	lastLog := time.Now()
	for {
		// The oldest entry up to mark, if any is left (XRANGE is inclusive).
		es, err := r.rdb.XRangeN(ctx, r.opts.Outbox, "-", mark, 1).Result()
		if err == nil && len(es) == 0 {
			return nil
		}
		if time.Since(lastLog) >= 10*time.Second {
			lastLog = time.Now()
			if err != nil {
				log.WarnContext(ctx, "read the outbox; retrying", "err", err)
			} else {
				log.InfoContext(ctx, "stock rebuild waiting for order-service to hand on the orders its outbox held at the loss",
					"oldest", es[0].ID, "newest_at_loss", mark)
			}
		}
		if err := r.hold(ctx, productID, token, r.opts.Interval); err != nil {
			return err
		}
	}
}

// hold waits d while keeping the lock, renewing it every Interval.
func (r *Rebuilder) hold(ctx context.Context, productID, token string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		if err := r.renew(ctx, productID, token); err != nil {
			return err
		}
		left := time.Until(deadline)
		if left <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(left, r.opts.Interval)):
		}
	}
}

// renew extends the lock; errLockLost when token no longer holds it.
func (r *Rebuilder) renew(ctx context.Context, productID, token string) error {
	held, err := rebuildLockScript.Run(ctx, r.rdb, []string{lockKey(productID)}, token, r.opts.LockTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("renew the stock rebuild lock of %s: %w", productID, err)
	}
	if held == 0 {
		return fmt.Errorf("product %s: %w", productID, errLockLost)
	}
	return nil
}

// writeUsers writes the per-user counts to the rebuild's own copy of the
// users hash; the finish script renames it into place.
func (r *Rebuilder) writeUsers(ctx context.Context, productID, token string, users map[string]int) error {
	key := rebuildUsersKey(productID, token)
	pipe := r.rdb.Pipeline()
	pipe.Del(ctx, key)
	args := make([]any, 0, 2*usersPerWrite)
	for u, n := range users {
		args = append(args, u, n)
		if len(args) == cap(args) {
			pipe.HSet(ctx, key, args...)
			args = make([]any, 0, 2*usersPerWrite)
		}
	}
	if len(args) > 0 {
		pipe.HSet(ctx, key, args...)
	}
	// An abandoned copy (the rebuild died) goes away by itself.
	pipe.Expire(ctx, key, time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write per-user counts of %s: %w", productID, err)
	}
	return nil
}

func newToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥1.24)
	return hex.EncodeToString(b[:])
}
