// Command load runs a flash sale against the running system (`make run`):
// it creates or resets the sale, sends orders open-loop at -rate or
// closed-loop with -conns connections, pays -pay of the accepted orders
// right after their 202, watches every consumer group drain through
// /metrics, runs the verifier and writes accepted.txt (the 202s and the pays
// answered 200), report.json, report.html and report.png to -out.
// It exits 1 when the verifier finds a violation or the system did not drain.
//
//	load -stock 10000 -rate 12000 -duration 10s
//	load -stock 300 -requests 2000 -conns 32 -pay 0.5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"seckill/loadtest/report"
	"seckill/loadtest/scenario"
	"seckill/loadtest/verify"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		sc       scenario.Scenario
		conn     verify.Conn
		out      = flag.String("out", ".load", "directory for accepted.txt and the report")
		noVerify = flag.Bool("no-verify", false, "do not wait for settled orders nor verify (intake only)")
	)
	flag.StringVar(&sc.OrderURL, "order", "http://127.0.0.1:8080", "order-service base URL")
	flag.StringVar(&sc.PaymentURL, "payment", "http://127.0.0.1:8081", "payment-service base URL")
	flag.StringVar(&sc.InventoryURL, "inventory", "http://127.0.0.1:8082", "inventory-service base URL")
	flag.StringVar(&sc.LogisticsURL, "logistics", "http://127.0.0.1:8083", "logistics-service base URL")
	flag.StringVar(&sc.BrokerMetricsURL, "broker-metrics", "http://127.0.0.1:8084/metrics", "the embedded broker's Prometheus metrics, to chart its RSS (make run serves them; \"\" = off)")
	flag.StringVar(&sc.AdminToken, "token", os.Getenv("ADMIN_TOKEN"), "inventory admin token (env ADMIN_TOKEN)")
	flag.StringVar(&sc.Load.ProductID, "product", fmt.Sprintf("load-%d", time.Now().Unix()), "product ID of the sale (created or reset)")
	flag.StringVar(&sc.Sale.Name, "name", "load test sale", "product name")
	flag.IntVar(&sc.Sale.Stock, "stock", 10000, "units on sale")
	flag.IntVar(&sc.Sale.PerUserLimit, "limit", 1, "per-user limit")
	flag.Int64Var(&sc.Sale.PriceCents, "price", 999, "price in cents")
	flag.Float64Var(&sc.Load.Rate, "rate", 0, "open loop: arrivals per second (0 = closed loop)")
	flag.IntVar(&sc.Load.Conns, "conns", 64, "connections (open loop: most requests in flight)")
	flag.IntVar(&sc.Load.Users, "users", 1_000_000, "distinct users")
	flag.Float64Var(&sc.Load.RepeatShare, "repeat", 0.05, "share of requests by users who already got a 202 (new Idempotency-Key)")
	flag.Float64Var(&sc.Load.DupShare, "dup", 0.05, "share of requests replaying an earlier Idempotency-Key")
	flag.DurationVar(&sc.Load.Duration, "duration", 10*time.Second, "stop sending after this long (0 = only -requests)")
	flag.IntVar(&sc.Load.Requests, "requests", 0, "stop after this many requests (0 = only -duration)")
	flag.Float64Var(&sc.PayShare, "pay", 0.5, "share of accepted orders to pay, each right after its 202; the rest are expired at their pay deadline")
	flag.IntVar(&sc.PayWorkers, "pay-workers", 32, "pays in flight at most")
	flag.DurationVar(&sc.PayRetry, "pay-retry", 30*time.Second, "how long after its 202 to retry paying an order answered 404 (not known yet) or 5xx")
	flag.DurationVar(&sc.DrainTimeout, "drain-timeout", 10*time.Minute, "how long to wait for the groups to drain and the orders to settle")
	flag.Float64Var(&sc.ConsumeRate, "consume-rate", 200, "the services' CONSUME_RATE, to compare each group's drain rate with")
	conn.RegisterFlags(flag.CommandLine)
	flag.Parse()
	if sc.AdminToken == "" {
		return fmt.Errorf("no admin token: set ADMIN_TOKEN (printed by make run) or -token")
	}
	sc.Progress = os.Stderr
	sc.Command = "load " + strings.Join(os.Args[1:], " ")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if !*noVerify {
		stores, err := verify.Open(ctx, conn)
		if err != nil {
			return fmt.Errorf("open the stores for the verifier: %w", err)
		}
		defer stores.Close()
		sc.Stores = &stores
	} else {
		sc.DrainTimeout = time.Nanosecond
		sc.PayShare = 0
	}
	rep, err := scenario.Run(ctx, sc)
	if rep != nil && rep.Load != nil {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		acc := filepath.Join(*out, "accepted.txt")
		if werr := verify.WriteAnswers(acc, answers(sc.Load.ProductID, rep)); werr != nil {
			return werr
		}
		if werr := rep.Write(*out); werr != nil {
			return werr
		}
		fmt.Print(rep.Text())
		fmt.Printf("wrote %s, %s, %s, %s\n", acc, filepath.Join(*out, "report.json"),
			filepath.Join(*out, "report.html"), filepath.Join(*out, "report.png"))
	}
	if err != nil {
		return err
	}
	if *noVerify {
		return nil
	}
	if !rep.Drain.Drained {
		return fmt.Errorf("not drained within %s: %s", sc.DrainTimeout, rep.Drain.Waiting)
	}
	if rep.Verify != nil && !rep.Verify.OK() {
		return fmt.Errorf("verifier found %d violations", len(rep.Verify.Violations))
	}
	return nil
}

// answers is what the clients were answered: every 202's order and, when
// the run paid, every pay answered 200.
func answers(product string, rep *report.Report) verify.Answers {
	a := verify.Answers{ProductID: product, Accepted: rep.Load.AcceptedIDs}
	if rep.Pay != nil {
		a.Paid = rep.Pay.PaidIDs
	}
	return a
}
