package stock_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"seckill/inventory-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

// replica is one inventory-service replica's Rebuilder with its own metrics.
type replica struct {
	r   *stock.Rebuilder
	reg *prometheus.Registry
}

// rebuildOpts are short timings for tests; the loaded marker is the test's own.
func (e *env) rebuildOpts(t *testing.T, grace time.Duration) stock.RebuildOptions {
	t.Helper()
	loaded := testenv.Unique(t, "loaded")
	t.Cleanup(func() { e.rdb.Del(context.Background(), loaded) })
	return stock.RebuildOptions{Interval: 50 * time.Millisecond, Grace: grace, LockTTL: 500 * time.Millisecond, Loaded: loaded}
}

func (e *env) replica(group string, opts stock.RebuildOptions) replica {
	reg := prometheus.NewRegistry()
	m := stock.NewMetrics(reg)
	return replica{r: stock.NewRebuilder(e.store, e.rdb, e.producer, stock.NewBacklog(e.mqCfg, group), m, e.log, opts), reg: reg}
}

// run runs the replica's checks until the test ends.
func (rp replica) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rp.r.Run(ctx); err != nil {
			t.Errorf("Run() error = %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func (rp replica) rebuilds(t *testing.T, result string) float64 {
	t.Helper()
	return testenv.Counter(t, rp.reg, "inventory_stock_rebuilds_total", map[string]string{"result": result})
}

// wipe does to the product what a Redis restarted empty does (the test's
// share of it: the shared Redis is not flushed), marker included.
func (e *env) wipe(t *testing.T, loaded string, products ...string) {
	t.Helper()
	keys := []string{loaded}
	for _, p := range products {
		keys = append(keys, productKeys(p)...)
	}
	if err := e.rdb.Del(t.Context(), keys...).Err(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) exists(t *testing.T, key string) bool {
	t.Helper()
	n, err := e.rdb.Exists(t.Context(), key).Result()
	if err != nil {
		t.Fatalf("EXISTS %s error = %v", key, err)
	}
	return n == 1
}

func (e *env) users(t *testing.T, product string) map[string]int {
	t.Helper()
	h, err := e.rdb.HGetAll(t.Context(), events.UsersKey(product)).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for u, v := range h {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("users hash %s = %q", u, v)
		}
		out[u] = n
	}
	return out
}

// handle delivers messages to the reserve handler, each must succeed.
func (e *env) handle(t *testing.T, ms ...mq.Message) {
	t.Helper()
	for _, m := range ms {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s %s) error = %v", m.Tag, m.ID, err)
		}
	}
}

// TestRebuildAfterRedisLost: a product that lost its keys gets its info
// back at once (so it is not unknown) and takes no orders (no stock key)
// while the rebuild waits; then stock = stock - sold and the per-user
// counts come back from the database, releases not yet given back in Redis
// are counted once, and the checks that follow rebuild nothing again.
func TestRebuildAfterRedisLost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 10, 3)
	o1, o2, o3, o4 := e.newOrder(t, p, "u1", 2), e.newOrder(t, p, "u2", 1), e.newOrder(t, p, "u1", 1), e.newOrder(t, p, "u3", 2)
	for i, o := range []order{o1, o2, o3, o4} {
		e.reserve(t, o)
		e.handle(t, createdMsg(t, fmt.Sprintf("c%d", i), o))
	}
	e.handle(t, closedMsg(t, "x4", o4)) // released and given back before the loss
	// Released in the database, the give-back still to come when Redis is lost.
	if _, err := e.store.Release(t.Context(), "x3", events.EventID(o3.id, events.TagClosed), o3.id); err != nil {
		t.Fatal(err)
	}

	opts := e.rebuildOpts(t, time.Second)
	e.wipe(t, opts.Loaded, p)
	rp := e.replica(testenv.Unique(t, "GID"), opts)
	rp.run(t)

	testenv.Eventually(t, 30*time.Second, "info and loaded marker back", func() bool {
		return e.exists(t, events.InfoKey(p)) && e.exists(t, opts.Loaded)
	})
	if e.exists(t, events.StockKey(p)) {
		t.Fatalf("stock key back before the grace (%s) was over: orders would not wait for the rebuild", opts.Grace)
	}
	if price, _ := e.rdb.HGet(t.Context(), events.InfoKey(p), "price").Int(); price != 100 {
		t.Errorf("restored info price = %d, want 100", price)
	}
	if sale, _ := e.rdb.HGet(t.Context(), events.InfoKey(p), "sale_id").Int(); sale != 1 {
		t.Errorf("restored info sale_id = %d, want 1 (reservations carry it)", sale)
	}
	testenv.Eventually(t, 20*time.Second, "stock rebuilt", func() bool { return e.exists(t, events.StockKey(p)) })

	if got := e.redisInt(t, events.StockKey(p)); got != 7 {
		t.Errorf("rebuilt stock = %d, want 7 (10 - o1 2 - o2 1; o3 and o4 released)", got)
	}
	if got, want := e.users(t, p), map[string]int{"u1": 2, "u2": 1}; !maps.Equal(got, want) {
		t.Errorf("rebuilt per-user counts = %v, want %v", got, want)
	}
	if e.exists(t, "sk:{"+p+"}:rebuild") || !e.exists(t, "sk:{"+p+"}:gen") {
		t.Errorf("after the rebuild: lock present %v, generation present %v; want false, true",
			e.exists(t, "sk:{"+p+"}:rebuild"), e.exists(t, "sk:{"+p+"}:gen"))
	}
	rel, err := e.store.Movement(t.Context(), o3.id, events.MovementRelease)
	if err != nil || !rel.RedisApplied {
		t.Errorf("o3's release after the rebuild = %+v, %v; want redis_applied (counted by the rebuild)", rel, err)
	}
	soldOut := sent[events.SoldOut](t, e.broker, events.TopicSoldOut)
	if last := soldOut[len(soldOut)-1]; last.ProductID != p || last.SoldOut {
		t.Errorf("last SOLDOUT = %+v, want %s not sold out", last, p)
	}

	// The close of o3 arrives now: it was counted, nothing is given back twice.
	e.handle(t, closedMsg(t, "x3", o3), closedMsg(t, "x3b", o3))
	if got := e.redisInt(t, events.StockKey(p)); got != 7 {
		t.Errorf("stock after o3's close arrived = %d, want 7", got)
	}
	time.Sleep(10 * opts.Interval) // more checks: nothing is missing, nothing rebuilt
	if done, other := rp.rebuilds(t, "done"), rp.rebuilds(t, "cancelled")+rp.rebuilds(t, "failed"); done != 1 || other != 0 {
		t.Errorf("rebuilds done %.0f, cancelled or failed %.0f; want 1 and 0", done, other)
	}
}

// TestRebuildWaitsForBacklog: orders reserved before the loss whose created
// events wait in the broker (the consumer is held) keep the product closed;
// the stock is published only once GID-inventory consumed and committed
// them, and counts them.
func TestRebuildWaitsForBacklog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 5, 1)
	group := testenv.Unique(t, "GID")
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release)
	c, err := mq.Subscribe(t.Context(), e.mqCfg,
		mq.Subscription{Group: group, Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: events.TagCreated + " || " + events.TagClosed}}},
		func(ctx context.Context, m mq.Message) error {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
			return e.reserver.Handle(ctx, m)
		}, e.log, e.mqm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for i := range 3 {
		o := e.newOrder(t, p, fmt.Sprintf("u%d", i), 1)
		e.reserve(t, o)
		m := createdMsg(t, "", o)
		if _, err := e.producer.SendSync(t.Context(), mq.Outgoing{Topic: events.TopicOrder, Tag: m.Tag, Keys: []string{o.id}, ShardingKey: o.id, Body: m.Body}); err != nil {
			t.Fatal(err)
		}
	}

	opts := e.rebuildOpts(t, 100*time.Millisecond)
	e.wipe(t, opts.Loaded, p)
	rp := e.replica(group, opts)
	rp.run(t)
	testenv.Eventually(t, 30*time.Second, "rebuild started", func() bool { return e.exists(t, "sk:{"+p+"}:rebuild") })
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if e.exists(t, events.StockKey(p)) {
			t.Fatalf("stock published while 3 created events were not consumed: %d", e.redisInt(t, events.StockKey(p)))
		}
	}
	start := time.Now()
	release()
	testenv.Eventually(t, 30*time.Second, "stock rebuilt after the backlog", func() bool { return e.exists(t, events.StockKey(p)) })
	t.Logf("stock published %s after the consumer was released (offsets are committed every 5 s)", time.Since(start).Round(time.Millisecond))
	if got, sold := e.redisInt(t, events.StockKey(p)), e.dbProduct(t, p).Sold; got != 2 || sold != 3 {
		t.Errorf("rebuilt stock %d with DB sold %d, want 2 and 3", got, sold)
	}
	if got, want := e.users(t, p), map[string]int{"u0": 1, "u1": 1, "u2": 1}; !maps.Equal(got, want) {
		t.Errorf("rebuilt per-user counts = %v, want %v", got, want)
	}
}

// TestRebuildTwoReplicas: two replicas see the same loss; the lock lets
// one rebuild, and a rebuild whose lock was taken over (its replica stalled
// past the TTL) publishes nothing.
func TestRebuildTwoReplicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p, q := e.product(t, 4, 2), e.product(t, 6, 2)
	o := e.newOrder(t, q, "u1", 2)
	e.reserve(t, o)
	e.handle(t, createdMsg(t, "c1", o))

	opts := e.rebuildOpts(t, 300*time.Millisecond)
	group := testenv.Unique(t, "GID")
	e.wipe(t, opts.Loaded, p, q)
	a, b := e.replica(group, opts), e.replica(group, opts)
	a.run(t)
	b.run(t)
	testenv.Eventually(t, 20*time.Second, "both products rebuilt", func() bool {
		return e.exists(t, events.StockKey(p)) && e.exists(t, events.StockKey(q))
	})
	time.Sleep(10 * opts.Interval)
	if got := a.rebuilds(t, "done") + b.rebuilds(t, "done"); got != 2 {
		t.Errorf("rebuilds done by both replicas = %.0f, want 2 (one per product)", got)
	}
	if got := a.rebuilds(t, "failed") + b.rebuilds(t, "failed") + a.rebuilds(t, "cancelled") + b.rebuilds(t, "cancelled"); got != 0 {
		t.Errorf("failed or cancelled rebuilds = %.0f, want 0 (the second replica starts none)", got)
	}
	if sp, sq := e.redisInt(t, events.StockKey(p)), e.redisInt(t, events.StockKey(q)); sp != 4 || sq != 4 {
		t.Errorf("rebuilt stocks = %d, %d; want 4, 4", sp, sq)
	}

	// A stalled replica: its lock expires and another token takes it.
	e.wipe(t, opts.Loaded, p)
	lock := "sk:{" + p + "}:rebuild"
	testenv.Eventually(t, 30*time.Second, "rebuild started", func() bool { return e.exists(t, lock) })
	if err := e.rdb.Set(t.Context(), lock, "another-replica", opts.LockTTL).Err(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "the taken-over rebuild cancelled, then a new one done", func() bool {
		return a.rebuilds(t, "cancelled")+b.rebuilds(t, "cancelled") >= 1 && e.exists(t, events.StockKey(p))
	})
	if got := e.redisInt(t, events.StockKey(p)); got != 4 {
		t.Errorf("stock rebuilt after the takeover = %d, want 4", got)
	}
}

// TestRebuildCancelledBySaleReset: a sale start during the rebuild writes
// Redis itself; the rebuild of the old sale publishes nothing over it.
func TestRebuildCancelledBySaleReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 5, 1)
	o := e.newOrder(t, p, "u1", 1)
	e.reserve(t, o)
	e.handle(t, createdMsg(t, "c1", o))
	opts := e.rebuildOpts(t, 2*time.Second)
	e.wipe(t, opts.Loaded, p)
	rp := e.replica(testenv.Unique(t, "GID"), opts)
	rp.run(t)
	testenv.Eventually(t, 30*time.Second, "rebuild started", func() bool { return e.exists(t, "sk:{"+p+"}:rebuild") })
	if _, err := e.sales.Put(t.Context(), p, stock.Sale{Name: "again", PriceCents: 100, Stock: 20, PerUserLimit: 1}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "rebuild cancelled", func() bool { return rp.rebuilds(t, "cancelled") == 1 })
	time.Sleep(10 * opts.Interval)
	if got := e.redisInt(t, events.StockKey(p)); got != 20 || rp.rebuilds(t, "done") != 0 {
		t.Errorf("stock after a sale reset during the rebuild = %d (rebuilds done %.0f), want the new sale's 20 and none",
			got, rp.rebuilds(t, "done"))
	}
	if u := e.users(t, p); len(u) != 0 {
		t.Errorf("per-user counts of the new sale = %v, want none", u)
	}
}

// TestGiveBackWaitsForRebuild: a close consumed while the stock key is
// missing gives nothing back and asks for a redelivery (not permanent); the
// redelivery after the rebuild finds the release counted and adds nothing.
func TestGiveBackWaitsForRebuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 3, 1)
	o := e.newOrder(t, p, "u1", 1)
	e.reserve(t, o)
	e.handle(t, createdMsg(t, "c1", o))
	opts := e.rebuildOpts(t, time.Second)
	e.wipe(t, opts.Loaded, p)

	err := e.reserver.Handle(t.Context(), closedMsg(t, "x1", o))
	if !errors.Is(err, stock.ErrStockRebuilding) || errors.Is(err, mq.ErrPermanent) {
		t.Fatalf("Handle(closed) without a stock key error = %v, want ErrStockRebuilding (retryable)", err)
	}
	if e.exists(t, events.StockKey(p)) {
		t.Fatalf("a give-back created the stock key")
	}
	rp := e.replica(testenv.Unique(t, "GID"), opts)
	rp.run(t)
	testenv.Eventually(t, 20*time.Second, "stock rebuilt", func() bool { return e.exists(t, events.StockKey(p)) })
	e.handle(t, closedMsg(t, "x1", o)) // the redelivery
	if got := e.redisInt(t, events.StockKey(p)); got != 3 {
		t.Errorf("stock after the rebuild and the redelivered close = %d, want 3", got)
	}
	if u := e.users(t, p); len(u) != 0 {
		t.Errorf("per-user counts = %v, want none (u1's order was closed)", u)
	}
	if got := e.count(t, "SELECT COUNT(*) FROM stock_movements WHERE order_id = ? AND redis_applied", o.id); got != 1 {
		t.Errorf("releases marked given back = %d, want 1", got)
	}
}
