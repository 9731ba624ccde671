// Command inventory runs inventory-service: the sale admin API, the consumer
// that deducts and releases stock for order events, and the orderly consumer
// that writes the stock ledger.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"seckill/inventory-service/internal/httpapi"
	"seckill/inventory-service/internal/stock"
	"seckill/inventory-service/migrations"
	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
)

const service = "inventory"

func main() {
	boot.Main(service, func() (Config, error) { return loadConfig(config.NewOverrides()) }, run)
}

// run wires the service and blocks until SIGINT/SIGTERM. Deferred closes run
// in reverse: consumers stop first, then the producer they send with, then
// Redis and the DB pool.
func run(ctx context.Context, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig(config.NewOverrides())
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "starting", "config", cfg)

	gdb, err := boot.OpenDB(ctx, cfg.MySQLDSN, migrations.FS)
	if err != nil {
		return err
	}
	defer db.Close(gdb)
	rdb, err := boot.OpenRedis(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer rdb.Close()

	reg := metrics.NewRegistry()
	mqMetrics := mq.NewMetrics(reg, service)
	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	// ORDER is produced by order-service; ensuring it here too lets the
	// services start in any order.
	topics := []mq.TopicSpec{
		{Name: events.TopicSoldOut, Queues: 1},
		{Name: events.TopicStockLedger, Queues: 1},
		{Name: events.TopicOrder, Queues: 4},
	}
	producer, err := boot.StartProducer(ctx, mqCfg, topics, "PID-inventory", log, mqMetrics)
	if err != nil {
		return err
	}
	defer producer.Close()

	m := stock.NewMetrics(reg)
	relay := outbox.NewRelay(gdb, producer, service, outbox.Options{}, log, reg)
	store := stock.NewStore(gdb, relay)
	reserver := stock.NewReserver(store, rdb, producer, m, log)
	handlers := map[string]mq.Handler{
		handlerReserve: reserver.Handle,
		handlerLedger:  stock.NewLedger(store, m, log).Handle,
	}
	// Created events that pass the throttle together are deducted in one
	// transaction; the ledger group is orderly and takes no batches.
	batches := map[string]mq.BatchHandler{handlerReserve: reserver.HandleBatch}
	consumers, err := boot.Subscribe(ctx, mqCfg, cfg.RocketMQ.ConsumerGroups, cfg.ConsumeRate, handlers, batches, log, mqMetrics)
	if err != nil {
		return err
	}
	// Deferred after the producer: runs before it, so no handler sends on a
	// closed producer.
	defer consumers.Close()

	// Redis may have lost its data while the service was down: the first
	// check puts every product's info back (and the loaded marker) before
	// anything is served; Run rebuilds what lacks stock.
	backlog := stock.NewBacklog(mqCfg, reserveGroup(cfg))
	rebuilder := stock.NewRebuilder(store, rdb, producer, backlog, m, log,
		stock.RebuildOptions{Interval: cfg.StockCheckInterval, Grace: cfg.StockRebuildGrace})
	if _, err := rebuilder.Check(ctx); err != nil {
		return fmt.Errorf("check redis against the database: %w", err)
	}

	api := httpapi.New(stock.NewSales(store, rdb, producer, m, log), cfg.AdminToken, log)
	engine := httpx.NewEngine(log, reg, service)
	boot.Ready(engine, boot.MySQLCheck(gdb), boot.RedisCheck(rdb), boot.BrokerCheck(mqCfg, events.TopicOrder), consumers.Check())
	api.Register(engine)
	g, gctx := errgroup.WithContext(ctx)
	// Shutdown: HTTP stops, then the consumers, then the relay sends what
	// they decided last (its drain), then the producer closes.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(gctx))
	defer stopRelay()
	g.Go(func() error { return relay.Run(relayCtx) })
	g.Go(func() error { return rebuilder.Run(gctx) })
	g.Go(func() error {
		defer stopRelay()
		defer consumers.Close()
		return httpx.Serve(gctx, cfg.HTTPAddr, engine, log)
	})
	if err := g.Wait(); err != nil {
		return err
	}
	log.InfoContext(ctx, "shutting down")
	return nil
}

// reserveGroup is the consumer group of handler inventory.reserve, whose
// progress a stock rebuild waits for (the default group when this replica
// runs none: another one consumes it).
func reserveGroup(cfg Config) string {
	for _, g := range cfg.RocketMQ.ConsumerGroups {
		for _, c := range g.Consumers {
			if c.Handler == handlerReserve {
				return g.GroupID
			}
		}
	}
	return defaultConfig().RocketMQ.ConsumerGroups[0].GroupID
}
