package stock_test

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/testenv"
)

// TestRebuildAfterRedisRestart: Redis restarts and comes back with part of
// its data (a snapshot taken before the last order: as after a crash with
// appendfsync everysec, its last second is gone). Its keys are all there,
// only their counts are behind the database: the new run_id tells, and the
// product is rebuilt as after a loss (stock and per-user counts from the
// database, which has both orders).
func TestRebuildAfterRedisRestart(t *testing.T) {
	t.Parallel()
	srv := testenv.StartRedisServer(t)
	e := newEnvOn(t, srv.Client(t))
	p := e.product(t, 10, 3)
	opts := e.rebuildOpts(t, 100*time.Millisecond)
	rp := e.replica(testenv.Unique(t, "GID"), opts)
	ctx, stop := context.WithCancel(t.Context())
	first := make(chan error, 1)
	go func() { first <- rp.r.Run(ctx) }()
	// The first check finds no marker of this run: it rebuilds the product
	// once. Wait for that rebuild to be counted, or the one after the
	// restart below could be mistaken for it.
	testenv.Eventually(t, 20*time.Second, "the new Redis checked and rebuilt", func() bool {
		return e.rdb.Get(t.Context(), opts.Loaded).Val() == testenv.RunID(t, e.rdb) && e.exists(t, events.StockKey(p)) &&
			rp.rebuilds(t, "done") >= 1
	})
	before := rp.rebuilds(t, "done")
	stop() // so the test sees what the restarted Redis kept before a check drops it
	if err := <-first; err != nil {
		t.Fatal(err)
	}

	o1, o2 := e.newOrder(t, p, "u1", 2), e.newOrder(t, p, "u2", 1)
	e.reserve(t, o1)
	e.handle(t, createdMsg(t, "c1", o1))
	if err := e.rdb.Save(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	e.reserve(t, o2) // in Redis after the snapshot: lost with the restart
	e.handle(t, createdMsg(t, "c2", o2))
	srv.Kill()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 8 {
		t.Fatalf("stock after the restart = %d, want 8 (the snapshot: o2 lost)", got)
	}
	rp.run(t)

	testenv.Eventually(t, 20*time.Second, "stock rebuilt after the restart", func() bool {
		return rp.rebuilds(t, "done") > before && e.exists(t, events.StockKey(p))
	})
	if got := e.redisInt(t, events.StockKey(p)); got != 7 {
		t.Errorf("stock after the rebuild = %d, want 7 (10 - 2 - 1, as the database)", got)
	}
	if got, want := e.users(t, p), map[string]int{"u1": 2, "u2": 1}; !maps.Equal(got, want) {
		t.Errorf("per-user counts after the rebuild = %v, want %v", got, want)
	}
	if n := testenv.Counter(t, rp.reg, "inventory_redis_resets_total", nil); n != 2 {
		t.Errorf("redis resets = %.0f, want 2 (the first run, then the restart)", n)
	}
}

// TestRebuildWaitsForOutbox: an order accepted before the loss whose outbox
// entry Redis kept is not in the broker until order-service hands it on;
// the rebuild publishes the stock only once the outbox holds nothing from
// before the loss (else the order would count in sold after the stock was
// written, and Redis would offer its units again).
func TestRebuildWaitsForOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 5, 1)
	opts := e.rebuildOpts(t, 100*time.Millisecond)
	opts.Outbox = testenv.Unique(t, "outbox")
	t.Cleanup(func() { e.rdb.Del(t.Context(), opts.Outbox) })
	id, err := e.rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: opts.Outbox, Values: []any{"order_id", "o-waiting", "product_id", p}}).Result()
	if err != nil {
		t.Fatal(err)
	}
	e.wipe(t, opts.Loaded, p)
	rp := e.replica(testenv.Unique(t, "GID"), opts)
	rp.run(t)
	time.Sleep(opts.Grace + 20*opts.Interval)
	if e.exists(t, events.StockKey(p)) {
		t.Fatalf("stock published while the outbox still holds %s from before the loss", id)
	}
	// order-service hands it on: the sender deletes the entry; a newer
	// entry (another product's order) does not hold the rebuild.
	e.rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: opts.Outbox, Values: []any{"order_id", "o-later"}})
	e.rdb.XDel(t.Context(), opts.Outbox, id)
	testenv.Eventually(t, 30*time.Second, "stock rebuilt once the outbox moved", func() bool { return e.exists(t, events.StockKey(p)) })
}
