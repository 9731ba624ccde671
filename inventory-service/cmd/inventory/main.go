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

	"github.com/redis/go-redis/v9"

	"seckill/inventory-service/internal/httpapi"
	"seckill/inventory-service/internal/stock"
	"seckill/inventory-service/migrations"
	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/dedup"
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

	gdb, err := db.Open(ctx, cfg.MySQLDSN)
	if err != nil {
		return fmt.Errorf("open mariadb: %w", err)
	}
	defer db.Close(gdb)
	if err := db.Migrate(ctx, gdb, dedup.Migrations); err != nil {
		return fmt.Errorf("migrate dedup: %w", err)
	}
	if err := db.Migrate(ctx, gdb, migrations.FS); err != nil {
		return fmt.Errorf("migrate inventory: %w", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DB: cfg.RedisDB})
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis %s: %w", cfg.RedisAddr, err)
	}

	reg := metrics.NewRegistry()
	mqMetrics := mq.NewMetrics(reg, service)
	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	// ORDER is produced by order-service; ensuring it here too lets the
	// services start in any order.
	err = mq.EnsureTopics(ctx, mqCfg, []mq.TopicSpec{
		{Name: events.TopicSoldOut, Queues: 1},
		{Name: events.TopicStockLedger, Queues: 1},
		{Name: events.TopicOrder, Queues: 4},
	})
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	producer, err := mq.NewProducer(ctx, mqCfg, "PID-inventory", log, mqMetrics)
	if err != nil {
		return fmt.Errorf("start producer: %w", err)
	}
	defer producer.Close()

	m := stock.NewMetrics(reg)
	store := stock.NewStore(gdb)
	handlers := map[string]mq.Handler{
		handlerReserve: stock.NewReserver(store, rdb, producer, m, log).Handle,
		handlerLedger:  stock.NewLedger(store, m, log).Handle,
	}
	for _, g := range cfg.RocketMQ.ConsumerGroups {
		c, err := mq.Subscribe(ctx, mqCfg, mq.FromConfig(g, cfg.ConsumeRate), dispatch(g, handlers), log, mqMetrics)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", g.GroupID, err)
		}
		// Deferred after the producer: runs before it, so no handler sends
		// on a closed producer.
		defer c.Close()
	}

	api := httpapi.New(stock.NewSales(store, rdb, producer, m, log), cfg.AdminToken, log)
	engine := httpx.NewEngine(log, reg, service)
	api.Register(engine)
	if err := httpx.Serve(ctx, cfg.HTTPAddr, engine, log); err != nil {
		return err
	}
	log.InfoContext(ctx, "shutting down")
	return nil
}

// dispatch routes a group's messages to the handler its config names for the
// message's topic.
func dispatch(g config.ConsumerGroup, handlers map[string]mq.Handler) mq.Handler {
	byTopic := map[string]mq.Handler{}
	names := map[string]bool{}
	for _, c := range g.Consumers {
		byTopic[c.Topic] = handlers[c.Handler] // names were validated against knownHandlers
		names[c.Handler] = true
	}
	if len(names) == 1 {
		// One handler for the whole group: no lookup, so a redelivered
		// message is handled whatever topic name the client reports for it.
		return byTopic[g.Consumers[0].Topic]
	}
	return func(ctx context.Context, msg mq.Message) error {
		h, ok := byTopic[msg.Topic]
		if !ok {
			return fmt.Errorf("group %s: no handler for topic %q: %w", g.GroupID, msg.Topic, mq.ErrPermanent)
		}
		return h(ctx, msg)
	}
}
