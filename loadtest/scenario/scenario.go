// Package scenario runs a whole flash sale against the system: it creates or
// resets the sale, drives the order load, pays a share of the accepted
// orders right after their 202, watches the consumer groups drain through
// /metrics until every order is settled, runs the verifier (with what the
// clients were answered) and builds the report. cmd/load and the end-to-end
// load test both use it.
package scenario

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"seckill/loadtest/drain"
	"seckill/loadtest/load"
	"seckill/loadtest/report"
	"seckill/loadtest/verify"
)

// Scenario is one sale.
type Scenario struct {
	OrderURL, PaymentURL, InventoryURL, LogisticsURL string // http://host:port
	BrokerMetricsURL                                 string // the embedded broker's /metrics (its RSS is charted); "" or not answering: skipped
	AdminToken                                       string
	Sale                                             load.Sale
	Load                                             load.Config    // OrderAddr and ProductID are filled in from the above
	PayShare                                         float64        // share of the accepted orders paid, each right after its 202
	PayWorkers                                       int            // pays in flight at most (default 32)
	PayRetry                                         time.Duration  // how long after its 202 an order answered 404 or 5xx is retried (default 30 s)
	DrainTimeout                                     time.Duration  // how long to wait for the drain after the load (default 10 min)
	DrainWindow                                      time.Duration  // quiet time that counts as drained (default 7 s)
	ConsumeRate                                      float64        // the services' CONSUME_RATE, to compare drain rates with (0 = unknown)
	Stores                                           *verify.Stores // nil: no settled check and no verification
	Progress                                         io.Writer      // nil: quiet
	Command                                          string
}

// Run runs the scenario. The error is for a sale that could not be run;
// violations are in the report's Verify.
func Run(ctx context.Context, sc Scenario) (*report.Report, error) {
	if sc.DrainTimeout == 0 {
		sc.DrainTimeout = 10 * time.Minute
	}
	if sc.DrainWindow == 0 {
		sc.DrainWindow = 7 * time.Second
	}
	u, err := url.Parse(sc.OrderURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("order URL %q: want http://host:port", sc.OrderURL)
	}
	sc.Load.OrderAddr = u.Host
	rep := &report.Report{Command: sc.Command, Machine: report.NewMachine(), Sale: sc.Sale}
	logf := func(format string, args ...any) {
		if sc.Progress != nil {
			fmt.Fprintf(sc.Progress, format+"\n", args...)
		}
	}

	if err := load.PutSale(ctx, sc.InventoryURL, sc.AdminToken, sc.Load.ProductID, sc.Sale); err != nil {
		return nil, fmt.Errorf("%w (is the system running? `make run` starts it and prints ADMIN_TOKEN)", err)
	}
	logf("sale %s: stock %d, per-user limit %d, price %d cents", sc.Load.ProductID, sc.Sale.Stock, sc.Sale.PerUserLimit, sc.Sale.PriceCents)

	decisionsBefore := decisions(ctx, sc.PaymentURL)
	var payer *load.Payer
	if sc.PayShare > 0 && sc.PaymentURL != "" {
		payer, err = load.NewPayer(ctx, load.PayConfig{URL: sc.PaymentURL, Share: sc.PayShare, Workers: sc.PayWorkers, RetryFor: sc.PayRetry})
		if err != nil {
			return nil, err
		}
		sc.Load.OnAccepted = payer.Offer
		logf("paying %.0f%% of the accepted orders right after their 202", sc.PayShare*100)
	}
	run, err := load.Start(ctx, sc.Load, sc.Progress)
	if err != nil {
		if payer != nil {
			payer.Wait()
		}
		return nil, err
	}
	var targets []drain.Target
	for _, t := range []struct{ name, base string }{{"order", sc.OrderURL}, {"inventory", sc.InventoryURL},
		{"payment", sc.PaymentURL}, {"logistics", sc.LogisticsURL}} {
		if t.base != "" {
			targets = append(targets, drain.Target{Service: t.name, URL: t.base + "/metrics"})
		}
	}
	if sc.BrokerMetricsURL != "" {
		if err := drain.Probe(ctx, sc.BrokerMetricsURL); err != nil {
			logf("broker metrics %s: %v; the broker's RSS is not charted", sc.BrokerMetricsURL, err)
		} else {
			targets = append(targets, drain.Target{Service: "broker", URL: sc.BrokerMetricsURL})
		}
	}
	watchStart := time.Now()
	w := drain.Watch(ctx, targets, watchStart, run.Accepted)
	defer w.Stop()
	res := run.Wait()
	rep.Load = res
	logf("load done: %d requests in %.1fs, %d accepted, %d replays, %d sold_out, %d limit_exceeded, %d unavailable (503), %d errors; p50 %.2f ms p99 %.2f ms p99.9 %.2f ms",
		res.Counts.Sent, res.Elapsed.Seconds(), res.Counts.Accepted, res.Counts.Replayed, res.Counts.SoldOut,
		res.Counts.LimitExceeded, res.Counts.Unavailable, res.Counts.Errors(), res.Latency.P50, res.Latency.P99, res.Latency.P999)

	if payer != nil {
		pr := payer.Wait()
		rep.Pay = &pr
		logf("pay: chose %d, paid %d, late (409) %d, unknown %d, failed %d; time to payable p50 %.2f ms p99 %.2f ms",
			pr.Chosen, pr.Paid, pr.Late, pr.Unknown, pr.Failed, pr.TimeToPayable.P50, pr.TimeToPayable.P99)
	}

	// The drain: every group's lag 0 and nothing consumed for a window, and
	// (with the stores) every accepted order persisted and settled.
	dr := &report.DrainReport{ConsumeRate: sc.ConsumeRate}
	rep.Drain = dr
	deadline := time.Now().Add(sc.DrainTimeout)
	lastLog := time.Time{}
	for {
		ok, waiting := drain.Drained(w.Samples(), sc.DrainWindow)
		if ok && sc.Stores != nil {
			open, persisted, err := settled(ctx, *sc.Stores, sc.Load.ProductID)
			switch {
			case err != nil:
				ok, waiting = false, err.Error()
			case persisted < len(res.AcceptedIDs):
				ok, waiting = false, fmt.Sprintf("%d of %d accepted orders persisted", persisted, len(res.AcceptedIDs))
			case open > 0:
				ok, waiting = false, fmt.Sprintf("%d orders not yet shipped or closed (pay timeout pending)", open)
			}
		}
		if ok {
			dr.Drained = true
			dr.DrainedAfter = time.Since(watchStart).Seconds()
			break
		}
		dr.Waiting = waiting
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		if time.Since(lastLog) >= 5*time.Second {
			logf("%6.0fs  draining: %s", time.Since(watchStart).Seconds(), waiting)
			lastLog = time.Now()
		}
		time.Sleep(time.Second)
	}
	dr.Samples = w.Stop()
	dr.ScrapeErrors, _ = w.Errors()
	dr.Rates = map[string]float64{}
	for _, g := range drain.Groups(dr.Samples) {
		if r, n := drain.DrainRate(dr.Samples, g, 10*time.Second); n > 0 && r > 0 {
			dr.Rates[g] = r
		}
	}
	if dr.Drained {
		dr.Waiting = ""
		logf("drained %.0fs after the start", dr.DrainedAfter)
	} else {
		logf("not drained within %s: %s", sc.DrainTimeout, dr.Waiting)
	}

	if sc.Stores != nil {
		opts := verify.Options{ProductID: sc.Load.ProductID, Accepted: res.AcceptedIDs}
		if rep.Pay != nil {
			opts.Paid = rep.Pay.PaidIDs
		}
		// Follow-ups of the last close (release, cancel, ledger line) may
		// still be in flight for a moment after the counters stopped.
		var vr *verify.Result
		for attempt := 0; ; attempt++ {
			vr, err = verify.Run(ctx, *sc.Stores, opts)
			if err != nil {
				return rep, fmt.Errorf("verify: %w", err)
			}
			if vr.OK() || attempt == 5 || !dr.Drained {
				break
			}
			time.Sleep(2 * time.Second)
		}
		rep.Verify = vr
	}
	if after := decisions(ctx, sc.PaymentURL); decisionsBefore != nil && after != nil {
		rep.Decisions = map[string]float64{}
		for k, v := range after {
			rep.Decisions[k] = v - decisionsBefore[k]
		}
	}
	rep.Machine.LoadAfter = report.LoadAvg()
	return rep, nil
}

// decisions reads payment-service's payment_decisions_total by result; nil
// when it cannot (no payment URL, or an older payment-service).
func decisions(ctx context.Context, paymentURL string) map[string]float64 {
	if paymentURL == "" {
		return nil
	}
	m, err := drain.Counter(ctx, paymentURL+"/metrics", "payment_decisions_total", "result")
	if err != nil || len(m) == 0 {
		return nil
	}
	return m
}

// settled returns how many of the product's current-sale orders are not yet
// shipped or closed, and how many there are.
func settled(ctx context.Context, s verify.Stores, product string) (open, total int, err error) {
	var started time.Time
	if err := s.Inventory.QueryRowContext(ctx, "SELECT sale_started_at FROM products WHERE product_id = ?", product).Scan(&started); err != nil {
		return 0, 0, fmt.Errorf("read sale start of %s: %w", product, err)
	}
	err = s.Order.QueryRowContext(ctx,
		"SELECT COUNT(*), COALESCE(SUM(status NOT IN ('shipped','closed')), 0) FROM orders WHERE product_id = ? AND created_at >= ?",
		product, started.Truncate(time.Millisecond)).Scan(&total, &open)
	if err != nil {
		return 0, 0, fmt.Errorf("count orders of %s: %w", product, err)
	}
	return open, total, nil
}
