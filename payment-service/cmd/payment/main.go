// Command payment runs payment-service: it keeps one payment per order
// (pending from the order's created event, cancelled or refunded by its closed
// event) and serves the pay API, which announces each payment with an async
// paid event.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/logging"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"

	"seckill/payment-service/internal/httpapi"
	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

func main() {
	checkConfig := flag.Bool("check-config", false, "load and validate the configuration, print it with secrets masked, exit")
	healthcheck := flag.Bool("healthcheck", false, "probe this service's /healthz on HTTP_ADDR, exit 0 when healthy")
	flag.Parse()

	log := logging.New("payment")
	var err error
	switch {
	case *checkConfig:
		var cfg Config
		if cfg, err = loadConfig(config.NewOverrides()); err == nil {
			log.Info("config ok", "config", cfg)
		}
	case *healthcheck:
		var cfg Config
		if cfg, err = loadConfig(config.NewOverrides()); err == nil {
			err = httpx.Probe(cfg.HTTPAddr)
		}
	default:
		err = run(context.Background(), log)
	}
	if err != nil {
		// A joined error (every invalid config key) logs one line per problem.
		for _, e := range unjoin(err) {
			log.Error("payment-service failed", "err", e)
		}
		os.Exit(1)
	}
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
