// Command payment runs payment-service, the arbiter of every order's pay
// window: the pay API (payable from the 202 on, refused after the deadline),
// the pay timeouts and a sweeper that expire unpaid orders, the created and
// closed events that complete and cancel payments, and the relay of the
// decided events (paid, closed) from its outbox table.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"

	"seckill/payment-service/internal/httpapi"
	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

const service = "payment"

// The sweeper expires pending payments this long past their deadline (their
// pay timeout was lost), checking this often.
const (
	sweepGrace    = 30 * time.Second
	sweepInterval = 10 * time.Second
)

func main() {
	boot.Main(service, func() (Config, error) { return loadConfig(config.NewOverrides()) }, run)
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
	mqMetrics := mq.NewMetrics(reg, service)
	payMetrics := payment.NewMetrics(reg)

	gdb, err := boot.OpenDB(ctx, cfg.MySQLDSN, migrations.FS)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "mysql", func() error { return db.Close(gdb) })

	rdb, err := boot.OpenRedis(ctx, cfg.Redis)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "redis", rdb.Close)

	mqCfg := mq.ConfigFrom(cfg.RocketMQ)
	topics := []mq.TopicSpec{{Name: events.TopicOrder, Queues: 4}}
	producer, err := boot.StartProducer(ctx, mqCfg, topics, "PID-payment", log, mqMetrics)
	if err != nil {
		return err
	}
	defer boot.CloseLogged(log, "producer", producer.Close)
	// paid and closed events are written with their decision and relayed
	// with async sends: a pay answers as soon as its transaction commits.
	relay := outbox.NewRelay(gdb, producer, service, outbox.Options{Mode: outbox.ModeAsync}, log, reg)
	store := payment.NewStore(gdb, relay)

	reservations := payment.NewReservations(rdb)
	h := payment.NewHandler(store, reservations, log, payMetrics)
	consumers, err := boot.Subscribe(ctx, mqCfg, cfg.RocketMQ.ConsumerGroups, cfg.ConsumeRate,
		map[string]mq.Handler{handlerApply: h.Handle, handlerTimeout: h.Handle},
		map[string]mq.BatchHandler{handlerApply: h.HandleBatch, handlerTimeout: h.HandleBatch}, log, mqMetrics)
	if err != nil {
		return err
	}
	// Deferred after the producer and the pool: closes before them, so
	// in-flight handlers can still commit.
	defer boot.CloseLogged(log, "consumers", consumers.Close)

	engine := httpx.NewEngine(log, reg, service)
	boot.Ready(engine, boot.MySQLCheck(gdb), boot.RedisCheck(rdb), boot.BrokerCheck(mqCfg, events.TopicOrder), consumers.Check())
	httpapi.New(payment.NewService(store, reservations, log, payMetrics), log).Register(engine)

	g, gctx := errgroup.WithContext(ctx)
	// Shutdown: intake (HTTP) stops, then the consumers, then the relay
	// sends what they decided last (its drain), then the producer closes.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(gctx))
	defer stopRelay()
	g.Go(func() error { return relay.Run(relayCtx) })
	g.Go(func() error { return payment.NewSweeper(h, sweepGrace, sweepInterval).Run(gctx) })
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
