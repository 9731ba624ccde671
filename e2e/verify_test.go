package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"seckill/e2e/internal/stack"
	"seckill/loadtest/verify"
	"seckill/pkg/events"
)

// A settled sale of 3 units, written straight into the four databases and
// Redis: one order paid in time, deducted and shipped; one never paid
// (payment expired, closed pay_timeout, units back); one paid in time but
// refused by inventory (deduction not applied, closed out_of_stock, payment
// refunded). The client was answered 200 for the pays of the first and the
// third.
const (
	vProductStock = 3
	oShipped      = "o-shipped"
	oClosed       = "o-closed"
	oRefunded     = "o-refunded"
)

// TestVerifyDetectsTampering shows that the verifier can fail: a consistent
// state passes, and each single tampered row makes it report a violation
// naming the order it concerns; the command exits 1 and prints that order.
func TestVerifyDetectsTampering(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MariaDB and Redis; skipped under -short")
	}
	bin := buildVerify(t)
	tests := []struct {
		name    string
		tamper  []string // SQL on "<db>: statement"
		redis   func(ctx context.Context, rdb *redis.Client, product string) error
		check   string
		orderID string
	}{
		{name: "untouched state passes"},
		{name: "deduction duplicated", tamper: []string{
			"inventory: ALTER TABLE stock_movements DROP INDEX stock_movements_order_kind",
			"inventory: INSERT INTO stock_movements (order_id, kind, product_id, user_id, quantity, sale_id, applied, created_at) SELECT order_id, kind, product_id, user_id, quantity, sale_id, applied, created_at FROM stock_movements WHERE order_id = 'o-shipped' AND kind = 'deduct'",
		}, check: verify.CheckDeduction, orderID: oShipped},
		{name: "release given twice", tamper: []string{
			"inventory: ALTER TABLE stock_movements DROP INDEX stock_movements_order_kind",
			"inventory: INSERT INTO stock_movements (order_id, kind, product_id, user_id, quantity, sale_id, applied, redis_applied, created_at) SELECT order_id, kind, product_id, user_id, quantity, sale_id, applied, redis_applied, created_at FROM stock_movements WHERE order_id = 'o-closed' AND kind = 'release'",
		}, check: verify.CheckRelease, orderID: oClosed},
		{name: "shipment deleted", tamper: []string{"logistics: DELETE FROM shipments WHERE order_id = 'o-shipped'"},
			check: verify.CheckShipment, orderID: oShipped},
		{name: "shipment for a closed order", tamper: []string{
			"logistics: INSERT INTO shipments (order_id, shipment_id, status, created_at) VALUES ('o-closed', 's-x', 'shipped', NOW(6))",
		}, check: verify.CheckShipment, orderID: oClosed},
		{name: "closed order left paid", tamper: []string{"payment: UPDATE payments SET status = 'paid' WHERE order_id = 'o-refunded'"},
			check: verify.CheckPayOrClose, orderID: oRefunded},
		{name: "payment missing", tamper: []string{"payment: DELETE FROM payments WHERE order_id = 'o-closed'"},
			check: verify.CheckPayment, orderID: oClosed},
		{name: "accepted order lost", tamper: []string{"order: DELETE FROM orders WHERE order_id = 'o-shipped'"},
			check: verify.CheckAccepted, orderID: oShipped},
		{name: "order no client got a 202 for", tamper: []string{
			"order: INSERT INTO orders (order_id, user_id, product_id, quantity, amount_cents, status, created_at, updated_at) VALUES ('o-ghost', 'u-ghost', '{product}', 1, 999, 'closed', NOW(3), NOW(3))",
		}, check: verify.CheckUnknown, orderID: "o-ghost"},
		{name: "per-user limit broken", tamper: []string{
			"order: INSERT INTO orders (order_id, user_id, product_id, quantity, amount_cents, status, created_at, updated_at) SELECT 'o-twice', user_id, product_id, quantity, amount_cents, 'created', created_at + INTERVAL 1 SECOND, updated_at FROM orders WHERE order_id = 'o-shipped'",
		}, check: verify.CheckUserLimit, orderID: "o-twice"},
		{name: "ledger line doubled", tamper: []string{
			"inventory: INSERT INTO stock_ledger (event_id, order_id, product_id, sale_id, kind, delta, created_at) VALUES ('o-closed:release:again', 'o-closed', '{product}', 1, 'release', 1, NOW(6))",
		}, check: verify.CheckLedger, orderID: oClosed},
		{name: "redis stock off", redis: func(ctx context.Context, rdb *redis.Client, product string) error {
			return rdb.IncrBy(ctx, events.StockKey(product), 1).Err()
		}, check: verify.CheckRedis},
		{name: "pay answered 200 but the order closed by its deadline", tamper: []string{
			"order: UPDATE orders SET status = 'closed', close_reason = 'pay_timeout' WHERE order_id = 'o-shipped'",
			"payment: UPDATE payments SET status = 'expired', paid_at = NULL WHERE order_id = 'o-shipped'",
			"logistics: DELETE FROM shipments WHERE order_id = 'o-shipped'",
		}, check: verify.CheckPaidKept, orderID: oShipped},
		{name: "refused order's payment cancelled after a 200", tamper: []string{
			"payment: UPDATE payments SET status = 'cancelled', paid_at = NULL WHERE order_id = 'o-refunded'",
		}, check: verify.CheckPaidKept, orderID: oRefunded},
		{name: "refund of an order inventory deducted", tamper: []string{
			"payment: UPDATE payments SET status = 'refunded', paid_at = accepted_at WHERE order_id = 'o-closed'",
		}, check: verify.CheckRefund, orderID: oClosed},
		{name: "shipment of an order inventory refused", tamper: []string{
			"inventory: UPDATE stock_movements SET applied = FALSE, note = 'refused' WHERE order_id = 'o-shipped' AND kind = 'deduct'",
		}, check: verify.CheckShipped, orderID: oShipped},
		{name: "shipment of an order not marked deducted", tamper: []string{
			"order: UPDATE orders SET deducted = FALSE WHERE order_id = 'o-shipped'",
		}, check: verify.CheckShipped, orderID: oShipped},
		{name: "paid after its deadline", tamper: []string{
			"payment: UPDATE payments SET paid_at = pay_deadline + INTERVAL 1 SECOND WHERE order_id = 'o-shipped'",
		}, check: verify.CheckPayWindow, orderID: oShipped},
		{name: "closed by its deadline, payment cancelled", tamper: []string{
			"payment: UPDATE payments SET status = 'cancelled' WHERE order_id = 'o-closed'",
		}, check: verify.CheckPayOrClose, orderID: oClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := newVerifyState(t)
			ctx := t.Context()
			for _, q := range tc.tamper {
				svc, stmt, _ := strings.Cut(q, ": ")
				stmt = strings.ReplaceAll(stmt, "{product}", st.product)
				if _, err := st.dbs[svc].ExecContext(ctx, stmt); err != nil {
					t.Fatalf("tamper %s: %v", q, err)
				}
			}
			if tc.redis != nil {
				if err := tc.redis(ctx, st.rdb, st.product); err != nil {
					t.Fatal(err)
				}
			}
			res, err := verify.Run(ctx, st.stores(), verify.Options{ProductID: st.product, Accepted: st.accepted, Paid: st.paid})
			if err != nil {
				t.Fatalf("verify.Run: %v", err)
			}
			if tc.check == "" {
				if !res.OK() {
					t.Fatalf("verify.Run on the untouched state = %v, want no violation", res.Violations)
				}
			} else if !slices.ContainsFunc(res.Violations, func(v verify.Violation) bool {
				return v.Check == tc.check && v.OrderID == tc.orderID
			}) {
				t.Fatalf("verify.Run violations = %v, want a %s violation naming order %q", res.Violations, tc.check, tc.orderID)
			}
			t.Logf("violations: %v", res.Violations)

			// The command: exit 0 only when all hold, else 1 naming the order.
			code, out := st.runCommand(t, bin)
			wantCode := 1
			if tc.check == "" {
				wantCode = 0
			}
			if code != wantCode {
				t.Fatalf("verify command exit code %d, want %d; output:\n%s", code, wantCode, out)
			}
			if tc.orderID != "" && !strings.Contains(out, "order "+tc.orderID+":") {
				t.Errorf("verify command output does not name order %s:\n%s", tc.orderID, out)
			}
		})
	}
}

// buildVerify builds the verify command once for the test.
func buildVerify(t *testing.T) string {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "verify")
	cmd := exec.Command("go", "build", "-o", out, "./loadtest/cmd/verify")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./loadtest/cmd/verify: %v\n%s", err, b)
	}
	return out
}

type verifyState struct {
	prefix, product string
	dbs             map[string]*sql.DB
	rdb             *redis.Client
	redisDB         int
	accepted, paid  []string
	server          *mysql.Config
}

func (s *verifyState) stores() verify.Stores {
	return verify.Stores{Order: s.dbs["order"], Inventory: s.dbs["inventory"], Payment: s.dbs["payment"],
		Logistics: s.dbs["logistics"], Redis: s.rdb}
}

// runCommand runs the verify command on the state and returns its exit code and output.
func (s *verifyState) runCommand(t *testing.T, bin string) (int, string) {
	t.Helper()
	acc := filepath.Join(t.TempDir(), "accepted.txt")
	if err := verify.WriteAnswers(acc, verify.Answers{ProductID: s.product, Accepted: s.accepted, Paid: s.paid}); err != nil {
		t.Fatal(err)
	}
	server := *s.server
	server.DBName = ""
	cmd := exec.Command(bin, "-accepted", acc, "-mysql", server.FormatDSN(), "-db-prefix", s.prefix,
		"-redis", redisAddr(), "-redis-db", strconv.Itoa(s.redisDB))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	default:
		t.Fatalf("run %s: %v", bin, err)
		return -1, ""
	}
}

func redisAddr() string {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// newVerifyState creates the four databases from the services' migrations
// (dropped in t.Cleanup) and writes the settled sale into them and Redis.
func newVerifyState(t *testing.T) *verifyState {
	t.Helper()
	root, err := stack.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	server, err := mysql.ParseDSN(getenvDefault("MYSQL_DSN", "root@tcp(127.0.0.1:3306)/?parseTime=true&loc=UTC"))
	if err != nil {
		t.Fatal(err)
	}
	server.DBName, server.ParseTime, server.Loc = "", true, time.UTC
	server.MultiStatements = false
	id := strconv.FormatInt(time.Now().UnixNano()%1e12, 36)
	s := &verifyState{
		prefix:   "e2e_verify_" + id + "_",
		product:  "verify-" + id,
		dbs:      map[string]*sql.DB{},
		accepted: []string{oShipped, oClosed, oRefunded, oShipped}, // a replayed 202 lists an ID twice
		paid:     []string{oShipped, oRefunded},
		server:   server,
	}
	ctx := t.Context()
	admin, err := sql.Open("mysql", server.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	for _, svc := range verify.Services {
		name := s.prefix + svc
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
			t.Fatalf("create database %s (MariaDB needed): %v", name, err)
		}
		t.Cleanup(func() {
			if _, err := admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
				t.Errorf("drop database %s: %v", name, err)
			}
		})
		c := *server
		c.DBName = name
		db, err := sql.Open("mysql", c.FormatDSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		s.dbs[svc] = db
		files, _ := filepath.Glob(filepath.Join(root, svc+"-service", "migrations", "*.sql"))
		if len(files) == 0 {
			t.Fatalf("no migrations for %s", svc)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, stmt := range strings.Split(string(b), ";\n") {
				if strings.TrimSpace(stripComments(stmt)) == "" {
					continue
				}
				if _, err := db.ExecContext(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
			}
		}
	}

	now := time.Now().UTC().Truncate(time.Millisecond)
	start, created := now.Add(-time.Hour), now.Add(-30*time.Minute)
	p := s.product
	exec := func(svc, q string, args ...any) {
		t.Helper()
		if _, err := s.dbs[svc].ExecContext(ctx, q, args...); err != nil {
			t.Fatalf("%s: %s: %v", svc, q, err)
		}
	}
	exec("inventory", "INSERT INTO products (product_id, name, price_cents, stock, sold, per_user_limit, sale_id, sale_started_at, updated_at) VALUES (?, 'verify', 999, ?, 1, 1, 1, ?, ?)",
		p, vProductStock, start, now)
	for i, o := range []struct {
		id, user, status, reason, pay string
		deducted                      bool // inventory applied the deduction; else it refused it
	}{
		{oShipped, "ua", "shipped", "", "paid", true},
		{oClosed, "ub", "closed", "pay_timeout", "expired", true},
		{oRefunded, "uc", "closed", "out_of_stock", "refunded", false},
	} {
		at := created.Add(time.Duration(i) * time.Second)
		deadline := at.Add(10 * time.Second)
		var paidAt any
		upd := at.Add(time.Second) // paid, or refused
		if o.pay == "paid" || o.pay == "refunded" {
			paidAt = at.Add(time.Second)
		}
		if o.pay == "expired" {
			upd = deadline.Add(300 * time.Millisecond)
		}
		exec("order", "INSERT INTO orders (order_id, user_id, product_id, quantity, amount_cents, pay_deadline, status, deducted, close_reason, created_at, updated_at) VALUES (?, ?, ?, 1, 999, ?, ?, ?, ?, ?, ?)",
			o.id, o.user, p, deadline, o.status, o.deducted, o.reason, at, upd)
		exec("payment", "INSERT INTO payments (order_id, amount_cents, user_id, product_id, quantity, accepted_at, pay_deadline, paid_at, status, created_at, updated_at) VALUES (?, 999, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
			o.id, o.user, p, at, deadline, paidAt, o.pay, at, upd)
		if !o.deducted {
			exec("inventory", "INSERT INTO stock_movements (order_id, kind, product_id, user_id, quantity, sale_id, applied, note, created_at) VALUES (?, 'deduct', ?, ?, 1, 1, FALSE, 'refused', ?)", o.id, p, o.user, at)
			exec("inventory", "INSERT INTO stock_movements (order_id, kind, product_id, user_id, quantity, sale_id, applied, note, created_at) VALUES (?, 'release', ?, ?, 1, 1, FALSE, 'not_deducted', ?)", o.id, p, o.user, upd)
			continue
		}
		exec("inventory", "INSERT INTO stock_movements (order_id, kind, product_id, user_id, quantity, sale_id, applied, created_at) VALUES (?, 'deduct', ?, ?, 1, 1, TRUE, ?)", o.id, p, o.user, at)
		exec("inventory", "INSERT INTO stock_ledger (event_id, order_id, product_id, sale_id, kind, delta, created_at) VALUES (?, ?, ?, 1, 'deduct', -1, ?)", o.id+":deduct", o.id, p, at)
		if o.status == "closed" {
			released := deadline.Add(2 * time.Second)
			exec("inventory", "INSERT INTO stock_movements (order_id, kind, product_id, user_id, quantity, sale_id, applied, redis_applied, created_at) VALUES (?, 'release', ?, ?, 1, 1, TRUE, TRUE, ?)", o.id, p, o.user, released)
			exec("inventory", "INSERT INTO stock_ledger (event_id, order_id, product_id, sale_id, kind, delta, created_at) VALUES (?, ?, ?, 1, 'release', 1, ?)", o.id+":release", o.id, p, released)
		} else {
			exec("logistics", "INSERT INTO shipments (order_id, shipment_id, status, created_at) VALUES (?, ?, 'shipped', ?)", o.id, "s-"+o.id, upd)
		}
	}

	// Redis: the product's keys only (unique per state), in database 0.
	s.rdb = redis.NewClient(&redis.Options{Addr: redisAddr(), DB: s.redisDB})
	t.Cleanup(func() {
		_ = s.rdb.Del(context.Background(), events.StockKey(p), events.InfoKey(p), events.UsersKey(p)).Err()
		s.rdb.Close()
	})
	if err := s.rdb.Set(ctx, events.StockKey(p), vProductStock-1, time.Hour).Err(); err != nil {
		t.Fatalf("redis at %s (needed): %v", redisAddr(), err)
	}
	return s
}

func stripComments(stmt string) string {
	var b strings.Builder
	for _, l := range strings.Split(stmt, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "--") {
			b.WriteString(l)
			b.WriteString("\n")
		}
	}
	return b.String()
}

func getenvDefault(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
