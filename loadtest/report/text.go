package report

import (
	"fmt"
	"sort"
	"strings"
)

// Text is the human summary of the report.
func (r *Report) Text() string {
	var b strings.Builder
	if l := r.Load; l != nil {
		c := l.Counts
		fmt.Fprintf(&b, "load: %s loop, product %s (stock %d, limit %d), %d conns", l.Mode, l.Config.ProductID, r.Sale.Stock, r.Sale.PerUserLimit, l.Config.Conns)
		if l.Config.Rate > 0 {
			fmt.Fprintf(&b, ", target %.0f req/s", l.Config.Rate)
		}
		fmt.Fprintf(&b, "\n  %d requests in %.2fs = %.0f req/s; 2xx %.0f/s\n", c.Sent, l.Elapsed.Seconds(), l.SentPerSec, l.AccPerSec)
		fmt.Fprintf(&b, "  accepted %d new + %d idempotent replays, sold_out %d, limit_exceeded %d, unavailable (503) %d, client_error %d, server_error %d, net_error %d\n",
			c.Accepted, c.Replayed, c.SoldOut, c.LimitExceeded, c.Unavailable, c.ClientError, c.ServerError, c.NetError)
		keys := make([]string, 0, len(l.ByAnswer))
		for k := range l.ByAnswer {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("  by answer:")
		for _, k := range keys {
			fmt.Fprintf(&b, " [%s]=%d", k, l.ByAnswer[k])
		}
		b.WriteString("\n")
		fmt.Fprintf(&b, "  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f\n",
			l.Latency.P50, l.Latency.P90, l.Latency.P99, l.Latency.P999, l.Latency.Max, l.Latency.Mean)
		if l.SampleError != "" {
			fmt.Fprintf(&b, "  first error: %s\n", l.SampleError)
		}
	}
	if p := r.Pay; p != nil {
		fmt.Fprintf(&b, "pay: chose %d, paid %d, order_closed %d, still unknown %d, failed %d, 5xx retried %d (%.1fs)\n",
			p.Chosen, p.Paid, p.Closed, p.Unknown, p.Failed, p.Retries, p.Took.Seconds())
		if p.Sample != "" {
			fmt.Fprintf(&b, "  first payment error: %s\n", p.Sample)
		}
	}
	if d := r.Drain; d != nil {
		if d.Drained {
			fmt.Fprintf(&b, "drain: every group drained and every order settled %.0fs after the start\n", d.DrainedAfter)
		} else {
			fmt.Fprintf(&b, "drain: NOT drained at the timeout: %s\n", d.Waiting)
		}
		groups := make([]string, 0, len(d.Rates))
		for g := range d.Rates {
			groups = append(groups, g)
		}
		sort.Strings(groups)
		for _, g := range groups {
			fmt.Fprintf(&b, "  %-22s best 10-s drain rate %6.1f msg/s", g, d.Rates[g])
			if d.ConsumeRate > 0 {
				fmt.Fprintf(&b, " (%+.1f%% vs CONSUME_RATE %.0f)", 100*(d.Rates[g]-d.ConsumeRate)/d.ConsumeRate, d.ConsumeRate)
			}
			b.WriteString("\n")
		}
		if first, last, ok := rssRange(d); ok {
			b.WriteString("  RSS MB first → last sample:")
			for _, svc := range sortedKeys(first) {
				fmt.Fprintf(&b, " %s %.0f→%.0f", svc, first[svc]/1e6, last[svc]/1e6)
			}
			b.WriteString("\n")
		}
		if d.ScrapeErrors > 0 {
			fmt.Fprintf(&b, "  %d /metrics scrapes failed\n", d.ScrapeErrors)
		}
	}
	if v := r.Verify; v != nil {
		verdict := "OK"
		if !v.OK() {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, "verify: %s %s\n", verdict, v.Summary())
		for i, x := range v.Violations {
			if i == 20 {
				fmt.Fprintf(&b, "  ... and %d more (report.json)\n", len(v.Violations)-20)
				break
			}
			fmt.Fprintf(&b, "  VIOLATION %s\n", x)
		}
	}
	fmt.Fprintf(&b, "machine: %s, %d CPUs, %s, load average before %s after %s\n",
		r.Machine.Host, r.Machine.CPUs, r.Machine.GoVersion, r.Machine.LoadBefore, r.Machine.LoadAfter)
	return b.String()
}

// rssRange returns each service's RSS at its first and last sample.
func rssRange(d *DrainReport) (first, last map[string]float64, ok bool) {
	first, last = map[string]float64{}, map[string]float64{}
	for _, s := range d.Samples {
		for svc, v := range s.RSS {
			if _, seen := first[svc]; !seen {
				first[svc] = v
			}
			last[svc] = v
		}
	}
	return first, last, len(first) > 0
}

func sortedKeys(m map[string]float64) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
