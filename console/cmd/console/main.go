// Command console serves the live sale console: a page that shows, updated
// every second, the front door (accepted/s, rejected/s by reason, intake
// p99), each consumer group (consumed/s against CONSUME_RATE, lag, retries,
// DLQ), each of the latest sales (stock, available, sold, orders pending
// payment, paid, closed), the outbox and the broker — and what is down. It
// only reads: the services' /metrics and read APIs, and the brokers' queue
// offsets through the name server.
//
//	console [-http-addr 127.0.0.1:8090] [-order-url URL] [-payment-url URL]
//	        [-inventory-url URL] [-logistics-url URL] [-namesrv ip:port]
//	        [-consume-rate 200] [-interval 1s] [-products 10]
//	console -healthcheck   probe the console's /healthz (exit 0 when up)
//
// Every flag has an environment variable (see config.go); a flag wins.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"seckill/console/internal/board"
	"seckill/console/internal/scrape"
	"seckill/console/internal/web"
	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/httpx"
	"seckill/pkg/logging"
	"seckill/pkg/mq"
)

const service = "console"

func main() {
	log := logging.New(service)
	var err error
	if args := os.Args[1:]; slices.Contains(args, "-healthcheck") {
		err = healthcheck(slices.DeleteFunc(args, func(a string) bool { return a == "-healthcheck" }))
	} else {
		err = run(context.Background(), log, os.Args[1:])
	}
	if err != nil {
		boot.LogErrors(log, "console failed", err)
		os.Exit(1)
	}
}

// healthcheck probes /healthz on the configured address (for a container
// image without curl).
func healthcheck(args []string) error {
	cfg, err := loadConfig(config.NewOverrides(), args, os.Stderr)
	if err != nil {
		return err
	}
	return httpx.Probe(cfg.HTTPAddr)
}

// run serves the console until SIGINT/SIGTERM: the poller reads the system
// every interval, the HTTP server hands its boards to the page.
func run(ctx context.Context, log *slog.Logger, args []string) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig(config.NewOverrides(), args, os.Stderr)
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}
	log.InfoContext(ctx, "starting", "config", cfg)

	// Each read must end before the next one is due.
	client := scrape.New(max(cfg.Interval*4/5, 500*time.Millisecond))
	defer client.Close()
	poller := board.NewPoller(board.Options{
		Services: []board.Source{
			{Name: "order", URL: cfg.OrderURL},
			{Name: "inventory", URL: cfg.InventoryURL},
			{Name: "payment", URL: cfg.PaymentURL},
			{Name: "logistics", URL: cfg.LogisticsURL},
		},
		InventoryURL: cfg.InventoryURL,
		OrderURL:     cfg.OrderURL,
		MQ:           mq.Config{NameServers: cfg.NameServers(), AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey},
		ConsumeRate:  cfg.ConsumeRate,
		Interval:     cfg.Interval,
		Products:     cfg.Products,
	}, client, log)

	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", cfg.HTTPAddr, err)
	}
	url := pageURL(ln.Addr().String())
	log.InfoContext(ctx, "console ready: open "+url, "url", url, "addr", ln.Addr().String())

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return poller.Run(gctx) })
	g.Go(func() error { return web.Serve(gctx, ln, web.Handler(poller, log), log) })
	err = g.Wait()
	log.InfoContext(ctx, "shutting down")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
