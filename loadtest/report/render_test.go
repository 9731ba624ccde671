package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"seckill/loadtest/drain"
	"seckill/loadtest/load"
	"seckill/loadtest/verify"
)

// TestWriteFromJSON re-renders a report.json (REPORT_JSON) into a temp dir;
// without it, it renders an empty report, which must still produce every file.
func TestWriteFromJSON(t *testing.T) {
	r := &Report{}
	if p := os.Getenv("REPORT_JSON"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, r); err != nil {
			t.Fatal(err)
		}
	}
	dir := os.Getenv("REPORT_OUT")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := r.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	for _, f := range []string{"report.json", "report.html", "report.png"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v (size %v)", f, err, st)
		}
	}
}

// TestTextShowsPayAndOutcome: the summary carries the payers' numbers, the
// decisions metric and the outcome, and the page renders with them.
func TestTextShowsPayAndOutcome(t *testing.T) {
	r := &Report{
		Pay:       &load.PayResult{Chosen: 4, Paid: 3, Late: 1, TimeToPayable: load.Latency{P50: 1.25, P99: 7.5}},
		Decisions: map[string]float64{"paid": 3, "late": 1, "expired": 2},
		Verify: &verify.Result{Paid: 3, Violations: []verify.Violation{}, Outcome: &verify.Outcome{
			Payments: map[string]int{"paid": 3, "expired": 3}, CloseReasons: map[string]int{"pay_timeout": 3},
			PaidKept: 2, PaidNotKept: 1, Refunds: 1, RefundsNotRefused: 1,
			StockBack:           verify.Delays{N: 3, P50: 1.5, P90: 2.5, P99: 2.5, Max: 2.5},
			StockBackByDeadline: []verify.DelaySecond{{T: 10, Delays: verify.Delays{N: 3, P50: 1.5, Max: 2.5}}},
		}},
	}
	text := r.Text()
	for _, want := range []string{
		"paid (200) 3, late (409 order_closed) 1",
		"time to payable (202 -> 200 or 409) ms: p50 1.25",
		"p99 7.50",
		"payment_decisions_total during the run: paid +3  late +1  expired +2",
		"payments expired=3 paid=3; closed pay_timeout=3",
		"kept 2, refused by inventory and refunded 0, paid but NOT kept 1",
		"refunds 1, of orders inventory did not refuse 1 (must be 0)",
		"of 3 unpaid orders, s: p50 1.50  p90 2.50  p99 2.50  max 2.50",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Text() lacks %q:\n%s", want, text)
		}
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), "Unpaid stock back on sale") {
		t.Errorf("report.html has no stock-back chart")
	}
}

// TestRSSChart: with RSS samples (the broker's among them) the summary gives
// each process's first, largest and last RSS and rss.png is drawn; without
// them there is no rss.png.
func TestRSSChart(t *testing.T) {
	var samples []drain.Sample
	for i := range 10 {
		samples = append(samples, drain.Sample{T: float64(i),
			Groups: map[string]drain.Group{"GID-order": {Lag: float64(1000 * i)}, "GID-order-soldout": {Lag: -1}},
			RSS:    map[string]float64{"broker": float64(80+i%3) * 1e6, "order": 50e6}})
	}
	r := &Report{Drain: &DrainReport{Samples: samples}}
	if text, want := r.Text(), "RSS MB first → max → last sample: broker 80→82→80 order 50→50→50"; !strings.Contains(text, want) {
		t.Errorf("Text() lacks %q:\n%s", want, text)
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "rss.png")); err != nil || st.Size() < 1000 {
		t.Errorf("rss.png: %v (size %v)", err, st)
	}

	empty := t.TempDir()
	if err := (&Report{}).Write(empty); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "rss.png")); !os.IsNotExist(err) {
		t.Errorf("rss.png without RSS samples: %v, want none", err)
	}
}
