// Command inventory runs inventory-service: the sale admin API, the consumer
// that deducts and releases stock for order events, and the orderly consumer
// that writes the stock ledger.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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
	store := stock.NewStore(gdb)
	handlers := map[string]mq.Handler{
		handlerReserve: stock.NewReserver(store, rdb, producer, m, log).Handle,
		handlerLedger:  stock.NewLedger(store, m, log).Handle,
	}
	consumers, err := boot.Subscribe(ctx, mqCfg, cfg.RocketMQ.ConsumerGroups, cfg.ConsumeRate, handlers, log, mqMetrics)
	if err != nil {
		return err
	}
	// Deferred after the producer: runs before it, so no handler sends on a
	// closed producer.
	defer consumers.Close()

	api := httpapi.New(stock.NewSales(store, rdb, producer, m, log), cfg.AdminToken, log)
	engine := httpx.NewEngine(log, reg, service)
	api.Register(engine)
	if err := httpx.Serve(ctx, cfg.HTTPAddr, engine, log); err != nil {
		return err
	}
	log.InfoContext(ctx, "shutting down")
	return nil
}
