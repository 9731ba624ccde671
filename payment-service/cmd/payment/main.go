// Command payment runs payment-service: it keeps one payment per order
// (pending from the order's created event, cancelled or refunded by its closed
// event) and serves the pay API, which announces each payment with an async
// paid event.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"

	"seckill/payment-service/internal/httpapi"
	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

func main() {
	boot.Main("payment", func() (Config, error) { return loadConfig(config.NewOverrides()) }, run)
}

func run(ctx context.Context, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	cfg, err := loadConfig(config.NewOverrides())
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "starting", "config", cfg)

	reg := metrics.NewRegistry()
	mqMetrics := mq.NewMetrics(reg, "payment")
	payMetrics := payment.NewMetrics(reg)

	gdb, err := db.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		return fmt.Errorf("open mysql: %w", err)
	}
	defer closeLogged(log, "mysql", func() error { return db.Close(gdb) })
	if err := db.Migrate(ctx, gdb, dedup.Migrations); err != nil {
		return fmt.Errorf("migrate dedup: %w", err)
	}
	if err := db.Migrate(ctx, gdb, migrations.FS); err != nil {
		return fmt.Errorf("migrate payments: %w", err)
	}

	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	if err := mq.EnsureTopics(ctx, mqCfg, []mq.TopicSpec{{Name: events.TopicOrder, Queues: 4}}); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	producer, err := mq.NewProducer(ctx, mqCfg, "PID-payment", log, mqMetrics)
	if err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer closeLogged(log, "producer", producer.Close)
	notifier := payment.NewNotifier(producer, log, 5, 200*time.Millisecond)
	defer closeLogged(log, "paid notifier", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return notifier.Close(ctx)
	})

	// Every consumer of the config names payment.apply (Validate checked), so
	// each group gets the one handler.
	h := payment.NewHandler(gdb, log, payMetrics)
	for _, g := range cfg.RocketMQ.ConsumerGroups {
		c, err := mq.Subscribe(ctx, mqCfg, mq.FromConfig(g, cfg.ConsumeRate), h.Handle, log, mqMetrics)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", g.GroupID, err)
		}
		// Deferred after the producer and the pool: closes before them.
		defer closeLogged(log, "consumer "+g.GroupID, c.Close)
	}

	engine := httpx.NewEngine(log, reg, "payment")
	httpapi.New(payment.NewService(gdb, notifier, log, payMetrics), log).Register(engine)
	log.InfoContext(ctx, "serving", "addr", cfg.HTTPAddr)
	if err := httpx.Serve(ctx, cfg.HTTPAddr, engine, log); err != nil {
		return fmt.Errorf("serve http: %w", err)
	}
	log.InfoContext(ctx, "stopping")
	return nil
}

func closeLogged(log *slog.Logger, what string, close func() error) {
	if err := close(); err != nil {
		log.Warn("close "+what, "err", err)
	}
}
