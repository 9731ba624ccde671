package stock_test

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"seckill/inventory-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

// TestGiveBackClientRetry: the reply of the give-back script is lost on the
// wire and go-redis sends it again on a new connection (MaxRetries): the
// units come back once, the buyer's count goes down once.
func TestGiveBackClientRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src, err := os.ReadFile("giveback.lua")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(src)
	lr := testenv.RedisLostReply(t, hex.EncodeToString(sum[:]))
	if err := redis.NewScript(string(src)).Load(t.Context(), e.rdb).Err(); err != nil {
		t.Fatal(err) // loaded, so the call is one EVALSHA (whose reply is lost)
	}
	rsv := stock.NewReserver(e.store, lr.Client, e.producer, e.metrics, e.log)

	p := e.product(t, 5, 2)
	o, other := e.newOrder(t, p, "u1", 1), e.newOrder(t, p, "u1", 1)
	e.reserve(t, o)
	e.reserve(t, other)
	for _, m := range []mq.Message{createdMsg(t, "c1", o), createdMsg(t, "c2", other)} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(created %s) error = %v", m.ID, err)
		}
	}
	lr.Arm()
	if err := rsv.Handle(t.Context(), closedMsg(t, "x1", o)); err != nil {
		t.Fatalf("Handle(closed) with the give-back's reply lost once = %v, want nil", err)
	}
	if lr.Lost() != 1 {
		t.Fatalf("replies lost = %d, want 1", lr.Lost())
	}
	if got, want := e.redisInt(t, events.StockKey(p)), e.dbProduct(t, p).Available(); got != 4 || want != 4 {
		t.Errorf("redis stock = %d, DB available = %d, want 4 and 4 (one unit given back once)", got, want)
	}
	if got := e.userCount(t, p, "u1"); got != 1 {
		t.Errorf("units of u1 in redis = %d, want 1 (its other order)", got)
	}
	rel, err := e.store.Movement(t.Context(), o.id, events.MovementRelease)
	if err != nil || !rel.RedisApplied {
		t.Errorf("release = %+v (%v), want given back in redis", rel, err)
	}
}

// TestRebuildClientRetry: the reply of a rebuild script is lost on the wire
// and go-redis sends it again: taking the lock finds its own token (no wait
// for the lock to expire), publishing finds its own new generation (done,
// not cancelled).
func TestRebuildClientRetry(t *testing.T) {
	t.Parallel()
	for _, script := range []string{"rebuild_take.lua", "rebuild_finish.lua"} {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			src, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha1.Sum(src)
			lr := testenv.RedisLostReply(t, hex.EncodeToString(sum[:]))
			if err := redis.NewScript(string(src)).Load(t.Context(), e.rdb).Err(); err != nil {
				t.Fatal(err)
			}
			p := e.product(t, 5, 1)
			o := e.newOrder(t, p, "u1", 1)
			e.reserve(t, o)
			e.handle(t, createdMsg(t, "c1", o))
			opts := e.rebuildOpts(t, 100*time.Millisecond)
			opts.LockTTL = time.Minute // a lock this rebuild lost track of would hold it that long
			e.wipe(t, opts.Loaded, p)
			reg := prometheus.NewRegistry()
			rb := stock.NewRebuilder(e.store, lr.Client, e.producer, stock.NewBacklog(e.mqCfg, testenv.Unique(t, "GID")),
				stock.NewMetrics(reg), e.log, opts)
			lr.Arm()
			rp := replica{r: rb, reg: reg}
			rp.run(t)
			testenv.Eventually(t, 20*time.Second, "stock rebuilt", func() bool { return e.exists(t, events.StockKey(p)) })
			if lr.Lost() != 1 {
				t.Fatalf("replies lost = %d, want 1", lr.Lost())
			}
			if got := e.redisInt(t, events.StockKey(p)); got != 4 {
				t.Errorf("rebuilt stock = %d, want 4", got)
			}
			testenv.Eventually(t, 30*time.Second, "the rebuild counted", func() bool { return rp.rebuilds(t, "done") == 1 })
			if n := rp.rebuilds(t, "cancelled") + rp.rebuilds(t, "failed"); n != 0 {
				t.Errorf("rebuilds cancelled or failed = %.0f, want 0", n)
			}
		})
	}
}
