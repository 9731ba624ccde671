package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"seckill/e2e/internal/stack"
	"seckill/loadtest/load"
	"seckill/loadtest/scenario"
	"seckill/loadtest/verify"
)

// TestLoad runs a small load through the whole system with the load tool
// (about 2,000 requests from 1,500 users, with repeat buyers and replayed
// Idempotency-Keys, against a sale of 300), pays half of the accepted
// orders, lets the pay timeout close the rest, waits for every consumer
// group to drain, and then the verifier must find every invariant holding.
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end load test (builds and starts the whole system); skipped under -short")
	}
	bin := stack.Build(t)
	s := stack.Start(t, bin, stack.Options{PayTimeoutLevel: 3}) // 10 s pay timeout
	stores := verify.Stores{Order: s.Order.DB, Inventory: s.Inventory.DB, Payment: s.Payment.DB,
		Logistics: s.Logistics.DB, Redis: s.Redis}
	const stock = 300
	sc := scenario.Scenario{
		OrderURL: s.Order.URL, PaymentURL: s.Payment.URL, InventoryURL: s.Inventory.URL, LogisticsURL: s.Logistics.URL,
		AdminToken: s.AdminToken,
		Sale:       load.Sale{Name: "load test", PriceCents: 999, Stock: stock, PerUserLimit: 1},
		Load: load.Config{
			ProductID: fmt.Sprintf("load-%d", time.Now().UnixNano()),
			Conns:     32, Users: 1500, RepeatShare: 0.1, DupShare: 0.1,
			Requests: 2000, Seed: 1,
		},
		PayShare:     0.5,
		PayDeadline:  30 * time.Second,
		DrainTimeout: 2 * time.Minute,
		DrainWindow:  6 * time.Second,
		ConsumeRate:  200,
		Stores:       &stores,
		Progress:     testWriter{t},
		Command:      t.Name(),
	}
	rep, err := scenario.Run(t.Context(), sc)
	if err != nil {
		t.Fatalf("scenario: %v", err)
	}
	t.Logf("report:\n%s", rep.Text())
	if dir := os.Getenv("E2E_LOG_DIR"); dir != "" {
		if err := rep.Write(filepath.Join(dir, "TestLoad-report")); err != nil {
			t.Errorf("write report: %v", err)
		}
	}
	c := rep.Load.Counts
	if c.Sent != 2000 || c.Errors() != 0 {
		t.Errorf("load sent %d requests with %d errors (first: %s), want 2000 and 0", c.Sent, c.Errors(), rep.Load.SampleError)
	}
	if c.Accepted != stock {
		t.Errorf("accepted %d distinct orders, want the stock %d", c.Accepted, stock)
	}
	if c.SoldOut == 0 || c.Replayed == 0 || c.LimitExceeded == 0 {
		t.Errorf("counts %+v: want sold_out, idempotent replays and limit_exceeded all seen", c)
	}
	if rep.Pay == nil || rep.Pay.Paid == 0 || rep.Pay.Unknown+rep.Pay.Failed != 0 {
		t.Errorf("pay = %+v, want payments and no unknown or failed ones", rep.Pay)
	}
	if !rep.Drain.Drained {
		t.Fatalf("not drained within %s: %s", sc.DrainTimeout, rep.Drain.Waiting)
	}
	if rep.Verify == nil || !rep.Verify.OK() {
		for _, v := range rep.Verify.Violations {
			t.Errorf("violation: %s", v)
		}
		t.Fatalf("verifier: %s", rep.Verify.Summary())
	}
	t.Logf("verifier: %s", rep.Verify.Summary())
	for svc, lines := range s.ErrorLines() {
		t.Errorf("%s logged %d lines at level ERROR, e.g.\n%s", svc, len(lines), lines[0])
	}
}

// testWriter sends the load tool's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-min(1, len(p))]))
	return len(p), nil
}
