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

	"golang.org/x/sync/errgroup"

	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"

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

	gdb, err := boot.OpenDB(ctx, cfg.MySQLDSN, migrations.FS)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "mysql", func() error { return db.Close(gdb) })

	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	topics := []mq.TopicSpec{{Name: events.TopicOrder, Queues: 4}}
	producer, err := boot.StartProducer(ctx, mqCfg, topics, "PID-logistics", log, mqMetrics)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "producer", producer.Close)

	relay := outbox.NewRelay(gdb, producer, "logistics", outbox.Options{}, log, reg)
	h := shipment.NewHandler(gdb, relay, log, shipment.NewMetrics(reg))
	consumers, err := boot.Subscribe(ctx, mqCfg, cfg.RocketMQ.ConsumerGroups, cfg.ConsumeRate,
		map[string]mq.Handler{handlerShip: h.Handle}, nil, log, mqMetrics)
	if err != nil {
		return err
	}
	// Deferred after the producer and the pool: closes before them, so
	// in-flight handlers can still send and commit.
	defer boot.CloseLogged(log, "consumers", consumers.Close)

	engine := httpx.NewEngine(log, reg, "logistics")
	boot.Ready(engine, boot.MySQLCheck(gdb), boot.BrokerCheck(mqCfg, events.TopicOrder), consumers.Check())
	httpapi.New(gdb, log).Register(engine)
	g, gctx := errgroup.WithContext(ctx)
	// Shutdown: HTTP stops, then the consumer, then the relay sends what it
	// shipped last (its drain), then the producer closes.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(gctx))
	defer stopRelay()
	g.Go(func() error { return relay.Run(relayCtx) })
	g.Go(func() error {
		defer stopRelay()
		defer boot.CloseLogged(log, "consumers", consumers.Close)
		log.InfoContext(ctx, "serving", "addr", cfg.HTTPAddr)
		if err := httpx.Serve(gctx, cfg.HTTPAddr, engine, log); err != nil {
			return fmt.Errorf("serve http: %w", err)
		}
		return nil
	})
	err = g.Wait()
	log.InfoContext(ctx, "stopping")
	return err
}
