package main

import (
	"strings"
	"testing"

	"seckill/loadtest/load"
)

// With several rounds each row is compared with the sync and hello runs of
// its own round: the box drifts between rounds.
func TestRenderComparesWithinARound(t *testing.T) {
	row := func(mode string, round int, perSec float64) *Row {
		return &Row{Mode: mode, Round: round, AccPerSec: perSec, Result: &load.Result{}}
	}
	rows := []*Row{
		row("hello", 1, 20000), row("sync", 1, 4000), row("outbox", 1, 6000),
		row("hello", 2, 10000), row("sync", 2, 2000), row("outbox", 2, 5000),
	}
	out := render(settings{rounds: 2, conns: 64}, rows)
	for _, want := range []string{
		"| outbox #1 | 6000 |", "| 1.50× | 30% |", // 6000 / 4000, 6000 / 20000
		"| outbox #2 | 5000 |", "| 2.50× | 50% |", // 5000 / 2000, 5000 / 10000
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
