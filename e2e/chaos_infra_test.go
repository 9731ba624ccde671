package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seckill/e2e/internal/stack"
	"seckill/pkg/events"
)

// Scenario 5: the embedded broker (with a data dir) is SIGKILLed a third
// into the load and started again on the same ports 1 s later. No message it
// acknowledged may be lost; producers and consumers reconnect by themselves.
func chaosBrokerRestart(t *testing.T, bin *stack.Binaries) {
	r := startChaos(t, bin, chaosConfig{stock: 150, buyers: 180, spread: 8 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 3, BrokerDataDir: t.TempDir()})
	needEmbedded(t, r.s)
	ctx := t.Context()
	r.goLoad(ctx)
	r.waitAccepted(50)
	start := time.Now()
	if err := r.s.RestartBroker(true, time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("broker SIGKILLed after %d accepted orders, back after %s", r.nAccepted.Load(), time.Since(start).Round(time.Millisecond))
	<-r.acceptedSig
	r.verify(ctx)
	r.errorLines()
}

// Scenario 6: inventory-service reaches MariaDB through a TCP proxy that
// drops every connection for 10 s in the middle of the load. Its group
// backs off (pkg/mq: a few tries, 100 ms doubling to 5 s, failed ones
// through the retry topic) so the backlog stays in the queue and its lag
// grows; intake is unaffected (no failed order request), and the backlog
// drains: nothing lost, nothing doubled.
func chaosMySQLOutage(t *testing.T, bin *stack.Binaries) {
	proxy := startProxy(t, stack.MySQLAddr(t))
	r := startChaos(t, bin, chaosConfig{stock: 150, buyers: 180, spread: 12 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 3, MySQLAddr: map[string]string{"inventory": proxy.Addr()}})
	ctx := t.Context()
	r.goLoad(ctx)
	r.waitAccepted(30)
	before := r.nAccepted.Load()
	proxy.Down()
	t.Logf("MariaDB unreachable for inventory-service from order %d on", before)
	var maxLag int64
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		if r.s.Embedded {
			if n, err := r.s.Lag(ctx, "GID-inventory"); err == nil {
				maxLag = max(maxLag, n)
			}
		}
	}
	proxy.Up()
	during := r.nAccepted.Load() - before
	retries, err := r.s.Inventory.Metric(ctx, "inventory_messages_consumed_total", map[string]string{"group": "GID-inventory", "result": "retry"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outage over: %d orders accepted during it, %d connections dropped, GID-inventory max broker lag %d, %.0f handler retries so far",
		during, proxy.Dropped(), maxLag, retries)
	if during == 0 {
		t.Errorf("no order accepted during the inventory database outage: intake must not depend on it")
	}
	if retries == 0 {
		t.Errorf("GID-inventory never retried during the outage: the fault did not reach it")
	}
	if r.s.Embedded && maxLag < during/2 {
		t.Errorf("GID-inventory lag peaked at %d with %d orders accepted during the outage, want ≥ %d: the backlog should wait in the queue", maxLag, during, during/2)
	}
	<-r.acceptedSig
	if r.orderRetry != 0 {
		t.Errorf("%d order requests failed during the inventory database outage, want 0", r.orderRetry)
	}
	r.verify(ctx)
	r.errorLines()
}

// Log secrets: a whole run with the database reached as a user with a
// password, sentinel RocketMQ credentials and the admin token; no log line
// of any process may contain one of them (verify checks the token and the
// credentials in every scenario; this one adds the password).
func chaosLogSecrets(t *testing.T, bin *stack.Binaries) {
	root, err := mysql.ParseDSN(stack.DSN(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	user, pw := "e2e_"+randHex(), "pw-sentinel-"+randHex()
	db, err := sql.Open("mysql", root.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, pw),
		fmt.Sprintf("CREATE USER '%s'@'localhost' IDENTIFIED BY '%s'", user, pw),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `e2e\\_%%`.* TO '%s'@'%%'", user),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `e2e\\_%%`.* TO '%s'@'localhost'", user),
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		for _, h := range []string{"%", "localhost"} {
			_, _ = db.ExecContext(context.Background(), fmt.Sprintf("DROP USER IF EXISTS '%s'@'%s'", user, h))
		}
	})
	c := root.Clone()
	c.User, c.Passwd = user, pw
	t.Setenv("MYSQL_DSN", c.FormatDSN())
	r := startChaos(t, bin, chaosConfig{stock: 100, buyers: 120, spread: 3 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 2})
	r.secrets = append(r.secrets, pw)
	ctx := t.Context()
	r.load(ctx)
	// A bad admin token is refused and not echoed either.
	bad := "wrong-token-" + randHex()
	r.secrets = append(r.secrets, bad)
	resp, err := r.s.Inventory.Do(ctx, "PUT", "/api/v1/products/"+r.product,
		map[string][]string{"Authorization": {"Bearer " + bad}}, map[string]any{"name": "x", "price_cents": 1, "stock": 1, "per_user_limit": 1})
	if err != nil || resp.Status != 401 {
		t.Errorf("PUT product with a wrong token = %v %v, want 401", resp, err)
	}
	r.verify(ctx)
	r.noErrorLines()
}

// chaosRedisLostDB is scenario 7's Redis database index: its FLUSHDB must
// not hit a stack of another test run using chaosRedisDB at the same time.
const chaosRedisLostDB = 11

// Scenario 7: Redis restarted empty. A first wave of buyers is accepted and
// handed to the broker (the test waits for the outbox stream to drain, so no
// 202 order is lost with Redis) while GID-inventory, throttled to 8 msg/s,
// is far behind; then the stack's Redis database is flushed (on the shared
// Redis, what a restart without its data looks like). The product must
// answer 503 stock_rebuilding with a Retry-After (never 404, never 500)
// until inventory-service has rebuilt its stock from the database, which
// waits until GID-inventory has consumed every created event the broker
// held. A replay of an Idempotency-Key accepted before the loss (the key is
// gone with Redis) is refused by the per-user count rebuilt from the
// database. A second wave of buyers, retrying on 503, then sells the product
// out; the databases, Redis (available = DB available) and the verifier
// agree with what the clients saw.
func chaosRedisLost(t *testing.T, bin *stack.Binaries) {
	const firstWave = 80
	r := startChaos(t, bin, chaosConfig{stock: 100, buyers: 160, spread: 3 * time.Second, payEach: 2},
		stack.Options{PayTimeoutLevel: 2, RedisDB: chaosRedisLostDB, ServiceEnv: map[string][]string{
			"inventory": {"CONSUME_RATE=15", "STOCK_REBUILD_GRACE=2s"},
		}})
	ctx := t.Context()
	r.loadRange(ctx, 0, firstWave)
	eventually(t, 30*time.Second, "outbox stream drained", func() error {
		if n, err := r.s.Redis.XLen(ctx, events.OutboxStream).Result(); err != nil || n != 0 {
			return fmt.Errorf("%d entries (%v)", n, err)
		}
		return nil
	})
	lag := int64(-1)
	if r.s.Embedded {
		lag, _ = r.s.Lag(ctx, "GID-inventory")
	}
	atFlush := r.nAccepted.Load()
	r.mu.Lock()
	firstWaveIDs := slices.Collect(maps.Keys(r.accepted)) // the second wave starts after the flush
	r.mu.Unlock()
	flushed := time.Now()
	if err := r.s.Redis.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	probe := map[string]any{"user_id": "probe", "product_id": r.product, "quantity": 1}
	resp, err := r.s.Order.Do(ctx, http.MethodPost, "/api/v1/orders", nil, probe)
	if err != nil || resp.Status != http.StatusServiceUnavailable || resp.ErrorCode() != "stock_rebuilding" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("order right after Redis lost its data = %v (Retry-After %q) %v, want 503 stock_rebuilding with a Retry-After",
			resp, resp.Header.Get("Retry-After"), err)
	}

	go r.load2(ctx, firstWave, r.cfg.buyers) // its buyers retry on 503
	t.Cleanup(func() { <-r.acceptedSig })
	eventually(t, 120*time.Second, "stock rebuilt by inventory-service", func() error {
		n, err := r.s.Inventory.Metric(ctx, "inventory_stock_rebuilds_total", map[string]string{"result": "done"})
		if err != nil || n < 1 {
			return fmt.Errorf("%.0f rebuilds done (%v)", n, err)
		}
		return nil
	})
	rebuiltAfter := time.Since(flushed)

	// A paid first-wave buyer replays its Idempotency-Key: the key is gone,
	// the per-user count (rebuilt from the database) refuses a second order.
	r.mu.Lock()
	var replayUser string
	for _, id := range firstWaveIDs {
		if r.paid[id] {
			replayUser = r.accepted[id]
			break
		}
	}
	r.mu.Unlock()
	if replayUser == "" {
		t.Fatal("no first-wave order paid by the time the stock was rebuilt")
	}
	resp, err = r.s.Order.Do(ctx, http.MethodPost, "/api/v1/orders", http.Header{"Idempotency-Key": {replayUser + "-1"}},
		map[string]any{"user_id": replayUser, "product_id": r.product, "quantity": 1})
	if err != nil || resp.Status != http.StatusConflict || resp.ErrorCode() != "limit_exceeded" {
		t.Errorf("replay of %s's Idempotency-Key after the rebuild = %v %v, want 409 limit_exceeded", replayUser, resp, err)
	}

	<-r.acceptedSig
	r.verify(ctx)
	refused, err := r.s.Order.Metric(ctx, "order_requests_total", map[string]string{"result": "rebuilding"})
	if err != nil {
		t.Fatal(err)
	}
	unknown, err := r.s.Order.Metric(ctx, "order_requests_total", map[string]string{"result": "unknown_product"})
	if err != nil {
		t.Fatal(err)
	}
	failed, err := r.s.Order.Metric(ctx, "order_requests_total", map[string]string{"result": "error"})
	if err != nil {
		t.Fatal(err)
	}
	if refused == 0 || unknown != 0 || failed != 0 {
		t.Errorf("order requests refused as rebuilding %.0f, as unknown product %.0f, failed (500) %.0f; want > 0, 0, 0", refused, unknown, failed)
	}
	var rebuilt struct {
		Sold, Available, Users int
		Behind                 int64 `json:"behind_at_snapshot"`
		WaitedMS               int64 `json:"waited_ms"`
	}
	lines := r.s.Inventory.Proc.Grep(`"msg":"stock rebuilt from the database"`)
	if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &rebuilt) != nil {
		t.Fatalf("inventory-service rebuild log lines = %q, want one", lines)
	}
	if rebuilt.Behind == 0 {
		t.Errorf("the rebuild found GID-inventory past the snapshot at once: the wait for the backlog was not exercised")
	}
	t.Logf("redis lost after %d accepted orders (GID-inventory lag %d): 503 stock_rebuilding for %s (%.0f order requests refused, 0 unknown, 0 failed); "+
		"rebuild waited %d ms (grace included) for %d ORDER messages below the snapshot, then sold %d available %d users %d",
		atFlush, lag, rebuiltAfter.Round(time.Millisecond), refused,
		rebuilt.WaitedMS, rebuilt.Behind, rebuilt.Sold, rebuilt.Available, rebuilt.Users)
	r.noErrorLines()
}
