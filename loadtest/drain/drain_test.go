package drain

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const exposition = `# HELP order_messages_consumed_total Messages handled.
# TYPE order_messages_consumed_total counter
order_messages_consumed_total{group="GID-order",result="ok",topic="ORDER"} 120
order_messages_consumed_total{group="GID-order",result="retry",topic="ORDER"} 3
order_messages_consumed_total{group="GID-order-soldout",result="ok",topic="SOLDOUT"} 2
order_consumer_lag{group="GID-order"} 40
order_consume_duration_seconds_bucket{group="GID-order",le="0.001"} 7
go_goroutines 42
`

func TestParse(t *testing.T) {
	got := map[string]Group{}
	if err := Parse(strings.NewReader(exposition), got); err != nil {
		t.Fatal(err)
	}
	want := map[string]Group{
		"GID-order":         {Consumed: 123, Lag: 40},
		"GID-order-soldout": {Consumed: 2, Lag: -1},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Parse (-want +got):\n%s", d)
	}
}

func TestDrained(t *testing.T) {
	mk := func(t float64, consumed, lag float64) Sample {
		return Sample{T: t, Groups: map[string]Group{"G": {Consumed: consumed, Lag: lag}}}
	}
	tests := []struct {
		name    string
		samples []Sample
		want    bool
	}{
		{"no samples", nil, false},
		{"lag left", []Sample{mk(0, 10, 5), mk(8, 10, 5)}, false},
		{"still consuming", []Sample{mk(0, 10, 0), mk(8, 20, 0)}, false},
		{"window not covered", []Sample{mk(0, 10, 0), mk(3, 10, 0)}, false},
		{"lag inside the window", []Sample{mk(0, 10, 0), mk(4, 10, 3), mk(8, 10, 0)}, false},
		{"quiet for the window", []Sample{mk(0, 10, 0), mk(4, 10, 0), mk(8, 10, 0)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, why := Drained(tc.samples, 7*time.Second); got != tc.want {
				t.Errorf("Drained = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

func TestDrainRate(t *testing.T) {
	// G drains a backlog at 200/s for 20 s, then idles; K keeps up with 70/s
	// of input and never has a backlog for a whole window.
	var samples []Sample
	consumedG, consumedK, lagG := 0.0, 0.0, 4000.0
	for i := range 31 {
		lagK := 0.0
		if i%4 == 0 {
			lagK = 3
		}
		samples = append(samples, Sample{T: float64(i), Groups: map[string]Group{
			"G": {Consumed: consumedG, Lag: lagG},
			"K": {Consumed: consumedK, Lag: lagK},
		}})
		if i < 20 {
			consumedG += 200
			lagG -= 200
		}
		consumedK += 70
	}
	got, n := DrainRate(samples, "G", 10*time.Second)
	if got != 200 || n == 0 {
		t.Errorf("DrainRate(G) = %v over %d windows, want 200", got, n)
	}
	if got, n := DrainRate(samples, "K", 10*time.Second); n != 0 {
		t.Errorf("DrainRate(K, never backlogged) = %v over %d windows, want no window", got, n)
	}
	if _, n := DrainRate(samples[:5], "G", 10*time.Second); n != 0 {
		t.Errorf("DrainRate over 4 s = %d windows, want 0", n)
	}
}

func TestParseCounter(t *testing.T) {
	const text = `# HELP payment_decisions_total Pay-window decisions.
# TYPE payment_decisions_total counter
payment_decisions_total{result="expired"} 12
payment_decisions_total{result="late"} 0
payment_decisions_total{result="paid"} 150
payment_decisions_total_other{result="paid"} 7
payment_payments_total{result="paid"} 150
payment_decisions_total 3
`
	got, err := parseCounter(strings.NewReader(text), "payment_decisions_total", "result")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"expired": 12, "late": 0, "paid": 150, "": 3}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseCounter (-want +got):\n%s", d)
	}
}
