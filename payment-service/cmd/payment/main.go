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

	gdb, err := boot.OpenDB(ctx, cfg.MySQLDSN, migrations.FS)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "mysql", func() error { return db.Close(gdb) })

	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	topics := []mq.TopicSpec{{Name: events.TopicOrder, Queues: 4}}
	producer, err := boot.StartProducer(ctx, mqCfg, topics, "PID-payment", log, mqMetrics)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "producer", producer.Close)
	notifier := payment.NewNotifier(producer, log, 5, 200*time.Millisecond)
	defer boot.CloseLogged(log, "paid notifier", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return notifier.Close(ctx)
	})

	h := payment.NewHandler(gdb, log, payMetrics)
	consumers, err := boot.Subscribe(ctx, mqCfg, cfg.RocketMQ.ConsumerGroups, cfg.ConsumeRate,
		map[string]mq.Handler{handlerApply: h.Handle}, map[string]mq.BatchHandler{handlerApply: h.HandleBatch}, log, mqMetrics)
	if err != nil {
		return err
	}
	// Deferred after the producer and the pool: closes before them, so
	// in-flight handlers can still send and commit.
	defer boot.CloseLogged(log, "consumers", consumers.Close)

	engine := httpx.NewEngine(log, reg, "payment")
	boot.Ready(engine, boot.MySQLCheck(gdb), boot.BrokerCheck(mqCfg, events.TopicOrder), consumers.Check())
	httpapi.New(payment.NewService(gdb, notifier, log, payMetrics), log).Register(engine)
	log.InfoContext(ctx, "serving", "addr", cfg.HTTPAddr)
	if err := httpx.Serve(ctx, cfg.HTTPAddr, engine, log); err != nil {
		return fmt.Errorf("serve http: %w", err)
	}
	log.InfoContext(ctx, "stopping")
	return nil
}
