package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"seckill/e2e/internal/stack"
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
// retries (RocketMQ reconsume back-off), intake is unaffected (no failed
// order request), and the backlog drains: nothing lost, nothing doubled.
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
