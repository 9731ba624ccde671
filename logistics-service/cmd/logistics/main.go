// Command logistics runs logistics-service: it creates one shipment per
// confirmed order, announces it with a shipped event, and serves the
// shipments API.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"

	"seckill/logistics-service/internal/httpapi"
	"seckill/logistics-service/internal/shipment"
	"seckill/logistics-service/migrations"
)

func main() {
	boot.Main("logistics", func() (Config, error) { return loadConfig(config.NewOverrides()) }, run)
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
	mqMetrics := mq.NewMetrics(reg, "logistics")

	gdb, err := db.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		return fmt.Errorf("open mysql: %w", err)
	}
	defer closeLogged(log, "mysql", func() error { return db.Close(gdb) })
	if err := db.Migrate(ctx, gdb, dedup.Migrations); err != nil {
		return fmt.Errorf("migrate dedup: %w", err)
	}
	if err := db.Migrate(ctx, gdb, migrations.FS); err != nil {
		return fmt.Errorf("migrate shipments: %w", err)
	}

	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	if err := mq.EnsureTopics(ctx, mqCfg, []mq.TopicSpec{{Name: events.TopicOrder, Queues: 4}}); err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	producer, err := mq.NewProducer(ctx, mqCfg, "PID-logistics", log, mqMetrics)
	if err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer closeLogged(log, "producer", producer.Close)

	// Every consumer of the config names logistics.ship (Validate checked).
	h := shipment.NewHandler(gdb, producer, log, shipment.NewMetrics(reg))
	for _, g := range cfg.RocketMQ.ConsumerGroups {
		c, err := mq.Subscribe(ctx, mqCfg, mq.FromConfig(g, cfg.ConsumeRate), h.Handle, log, mqMetrics)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", g.GroupID, err)
		}
		// Deferred after the producer and the pool: closes before them, so
		// in-flight handlers can still send shipped and commit.
		defer closeLogged(log, "consumer "+g.GroupID, c.Close)
	}

	engine := httpx.NewEngine(log, reg, "logistics")
	httpapi.New(gdb, log).Register(engine)
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
