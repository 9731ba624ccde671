package report

import (
	"fmt"
	"maps"
	"slices"
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
		fmt.Fprintf(&b, "pay (each right after its 202): chose %d, paid (200) %d, late (409 order_closed) %d (%d before the 202's deadline), unknown %d, failed %d; retried %d 404s, %d 5xx or no answer (%.1fs)\n",
			p.Chosen, p.Paid, p.Late, p.LateBeforeDeadline, p.Unknown, p.Failed, p.NotFound, p.Retries, p.Took.Seconds())
		fmt.Fprintf(&b, "  time to payable (202 -> 200 or 409) ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f; of it the payers' queue (202 -> first try) p50 %.2f  p99 %.2f\n",
			p.TimeToPayable.P50, p.TimeToPayable.P90, p.TimeToPayable.P99, p.TimeToPayable.Max, p.FirstTry.P50, p.FirstTry.P99)
		if p.Sample != "" {
			fmt.Fprintf(&b, "  first payment error: %s\n", p.Sample)
		}
	}
	if d := r.Decisions; d != nil {
		fmt.Fprintf(&b, "payment_decisions_total during the run: paid +%.0f  late +%.0f  expired +%.0f\n", d["paid"], d["late"], d["expired"])
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
		if first, peak, last, ok := rssRange(d); ok {
			b.WriteString("  RSS MB first → max → last sample:")
			for _, svc := range sortedKeys(first) {
				fmt.Fprintf(&b, " %s %.0f→%.0f→%.0f", svc, first[svc]/1e6, peak[svc]/1e6, last[svc]/1e6)
			}
			b.WriteString("\n")
		}
		if d.ScrapeErrors > 0 {
			fmt.Fprintf(&b, "  %d /metrics scrapes failed\n", d.ScrapeErrors)
		}
	}
	if v := r.Verify; v != nil && v.Outcome != nil {
		o := v.Outcome
		fmt.Fprintf(&b, "outcome: payments %s; closed %s\n", counts(o.Payments), counts(o.CloseReasons))
		if v.Paid > 0 || o.PaidNotKept > 0 {
			fmt.Fprintf(&b, "  pays answered 200: kept %d, refused by inventory and refunded %d, paid but NOT kept %d\n",
				o.PaidKept, o.PaidRefused, o.PaidNotKept)
		}
		fmt.Fprintf(&b, "  refunds %d, of orders inventory did not refuse %d (must be 0)\n", o.Refunds, o.RefundsNotRefused)
		sb := o.StockBack
		fmt.Fprintf(&b, "  stock back after the pay deadline (release - deadline) of %d unpaid orders, s: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f; %d without an applied release\n",
			sb.N, sb.P50, sb.P90, sb.P99, sb.Max, o.StockBackMissing)
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

// rssRange returns each process's RSS at its first sample, its largest and
// at its last sample.
func rssRange(d *DrainReport) (first, peak, last map[string]float64, ok bool) {
	first, peak, last = map[string]float64{}, map[string]float64{}, map[string]float64{}
	for _, s := range d.Samples {
		for svc, v := range s.RSS {
			if _, seen := first[svc]; !seen {
				first[svc] = v
			}
			peak[svc] = max(peak[svc], v)
			last[svc] = v
		}
	}
	return first, peak, last, len(first) > 0
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// counts is "k=v k=v" in key order.
func counts(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}
