// Command order runs order-service: the order intake API (atomic Redis
// reservation with the pay deadline fixed at acceptance; created events and
// the delayed pay timeout through the Redis outbox, or batch or sync send
// mode), the consumer that persists orders and follows the decisions about
// them (confirming the paid and deducted ones through the database outbox),
// and the sold-out broadcast listener.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"seckill/order-service/internal/httpapi"
	"seckill/order-service/internal/intake"
	"seckill/order-service/internal/order"
	"seckill/order-service/internal/outbox"
	"seckill/order-service/internal/stats"
	"seckill/order-service/internal/stock"
	"seckill/order-service/migrations"
	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/metrics"
	"seckill/pkg/mq"
	dbout "seckill/pkg/outbox"
)

const service = "order"

// Timings that are not settings.
const (
	soldOutFlagTTL = 5 * time.Second // a local flag is re-checked against Redis this often
	batchMax       = 64              // batch mode: messages per SendBatch
	batchWait      = 2 * time.Millisecond
	// outboxSampleInterval: order_outbox_length and _oldest_age_seconds are
	// read from Redis this often.
	outboxSampleInterval = 500 * time.Millisecond
	// handoffSweepAge: batch and sync modes send an outbox entry from the
	// sender only once it is this old (its request's own hand-off failed);
	// longer than a hand-off usually takes, so rarely sent twice.
	handoffSweepAge = 10 * time.Second
	// intakeGCPercent is order-service's GOGC unless the environment sets
	// one. The intake allocates ~10 KB a request over a live heap of a few
	// MB, so at Go's default (100) the collector runs many times a second
	// at the peak; at 400 order-service takes ~11% less CPU a request for
	// ~30 MB more RSS (loadtest/README "Measured").
	intakeGCPercent = 400
)

// setGCPercent sets GOGC to intakeGCPercent unless the environment sets it,
// and returns the value in force.
func setGCPercent() int {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(intakeGCPercent)
		return intakeGCPercent
	}
	p := debug.SetGCPercent(-1)
	debug.SetGCPercent(p)
	return p
}

func main() {
	boot.Main(service, func() (Config, error) { return loadConfig(config.NewOverrides()) }, run)
}

// run wires the service and blocks until SIGINT/SIGTERM. Shutdown order: HTTP
// intake stops, then the outbox sender (or batch flusher) drains what intake
// accepted, then (deferred, in reverse) consumers close, the producer, Redis
// and the DB pool.
func run(ctx context.Context, log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := loadConfig(config.NewOverrides())
	if err != nil {
		return err
	}
	gcPercent := setGCPercent()
	log.InfoContext(ctx, "starting", "config", cfg, "gc_percent", gcPercent)

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
	topics := []mq.TopicSpec{
		{Name: events.TopicOrder, Queues: 4},
		{Name: events.TopicSoldOut, Queues: 1},
		{Name: events.TopicOrderStats, Queues: 4},
	}
	producer, err := boot.StartProducer(ctx, mqCfg, topics, "PID-order", log, mqMetrics)
	if err != nil {
		return err
	}
	defer producer.Close()

	flags := stock.NewFlags(soldOutFlagTTL)
	relay := dbout.NewRelay(gdb, producer, service, dbout.Options{}, log, reg)
	handler := order.NewHandler(gdb, relay, log, order.NewMetrics(reg))
	handlers := map[string]mq.Handler{
		handlerApply:   handler.Apply,
		handlerSoldOut: flags.Handle,
		handlerStats:   stats.NewCounter(reg).Handle,
	}
	batches := map[string]mq.BatchHandler{handlerApply: handler.ApplyBatch}
	consumers, err := boot.Subscribe(ctx, mqCfg, cfg.RocketMQ.ConsumerGroups, cfg.ConsumeRate, handlers, batches, log, mqMetrics)
	if err != nil {
		return err
	}
	// Deferred after the producer: runs before it, so no handler sends on a
	// closed producer.
	defer consumers.Close()

	reserver := stock.NewReserver(rdb, stock.Options{})
	monitor := outbox.NewMonitor(rdb, "", outboxSampleInterval, log, reg)
	intakeOpts := intake.Options{Mode: cfg.OrderSendMode, TimeoutLevel: cfg.PayTimeoutLevel, Deleter: outbox.NewDeleter(rdb, ""),
		Outbox: monitor, MaxOutboxAge: cfg.OutboxMaxAge}
	if cfg.OrderSendMode == intake.ModeBatch {
		intakeOpts.Batcher = intake.NewBatcher(producer, batchMax, batchWait, cfg.PayTimeoutLevel)
	}
	svc := intake.New(reserver, flags, producer, intakeOpts, log)
	engine := httpx.NewEngine(log, reg, service)
	boot.Ready(engine, boot.MySQLCheck(gdb), boot.RedisCheck(rdb), boot.BrokerCheck(mqCfg, events.TopicOrder), consumers.Check())
	httpapi.New(svc, gdb, log, reg).Routes(engine)

	g, gctx := errgroup.WithContext(ctx)
	// The sender and the flusher stop only after HTTP intake has stopped
	// (on a signal, or when any goroutine here fails and cancels gctx), so
	// they drain every order intake accepted.
	drainCtx, drain := context.WithCancel(context.WithoutCancel(gctx))
	defer drain()
	// The database outbox's relay drains after the consumers that write it
	// have closed.
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(gctx))
	defer stopRelay()
	g.Go(func() error { return relay.Run(relayCtx) })
	g.Go(func() error {
		defer stopRelay()
		defer consumers.Close()
		defer drain()
		return httpx.Serve(gctx, cfg.HTTPAddr, engine, log)
	})
	// Every mode has a sender: in batch and sync modes the requests hand
	// their orders on themselves and the sender sweeps up the entries whose
	// hand-off failed.
	host, _ := os.Hostname()
	senderOpts := outbox.Options{Consumer: fmt.Sprintf("%s-%d", host, os.Getpid()), TimeoutLevel: cfg.PayTimeoutLevel}
	if cfg.OrderSendMode != intake.ModeOutbox {
		senderOpts.MinAge = handoffSweepAge
	}
	sender := outbox.New(rdb, producer, senderOpts, log, reg)
	g.Go(func() error { return sender.Run(drainCtx) })
	if b := intakeOpts.Batcher; b != nil {
		g.Go(func() error { return b.Run(drainCtx) })
	}
	g.Go(func() error { return monitor.Run(gctx) })

	err = g.Wait()
	log.InfoContext(ctx, "shutting down")
	return err
}
