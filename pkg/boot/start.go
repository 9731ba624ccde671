package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/dedup"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
)

// OpenDB opens the database of dsn (creating it if missing) and migrates it:
// the dedup table first, then the service's own migrations.
func OpenDB(ctx context.Context, dsn string, migrations fs.FS) (*gorm.DB, error) {
	gdb, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open mysql: %w", err)
	}
	if err := db.Migrate(ctx, gdb, dedup.Migrations); err != nil {
		db.Close(gdb)
		return nil, fmt.Errorf("migrate dedup: %w", err)
	}
	if err := db.Migrate(ctx, gdb, outbox.Migrations); err != nil {
		db.Close(gdb)
		return nil, fmt.Errorf("migrate outbox: %w", err)
	}
	if err := db.Migrate(ctx, gdb, migrations); err != nil {
		db.Close(gdb)
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return gdb, nil
}

// OpenRedis connects to r's Redis database and pings it.
func OpenRedis(ctx context.Context, r Redis) (*redis.Client, error) {
	rdb := redis.NewClient(&redis.Options{Addr: r.RedisAddr, DB: r.RedisDB})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("ping redis %s: %w", r.RedisAddr, err)
	}
	return rdb, nil
}

// StartProducer creates the topics the service produces (if missing, so the
// services start in any order) and starts its producer in group.
func StartProducer(ctx context.Context, cfg mq.Config, topics []mq.TopicSpec, group string, log *slog.Logger, m *mq.Metrics) (*mq.Producer, error) {
	if err := mq.EnsureTopics(ctx, cfg, topics); err != nil {
		return nil, fmt.Errorf("ensure topics: %w", err)
	}
	p, err := mq.NewProducer(ctx, cfg, group, log, m)
	if err != nil {
		return nil, fmt.Errorf("start producer: %w", err)
	}
	return p, nil
}

// Consumers are the started consumers of a service's groups.
type Consumers []*mq.Consumer

// Close stops every consumer (waiting for its in-flight handlers) and joins
// their errors.
func (cs Consumers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Subscribe starts one consumer per group, consuming at rate msg/s per group.
// Each consumer of a group names a handler in handlers (Common.Check verified
// the names); a message goes to the handler named for its topic. A group
// whose consumers all name one handler that also has an entry in batches
// gets it as its mq.BatchHandler (batches may be nil). If a group fails to
// start, the ones started are closed.
func Subscribe(ctx context.Context, cfg mq.Config, groups []config.ConsumerGroup, rate float64,
	handlers map[string]mq.Handler, batches map[string]mq.BatchHandler, log *slog.Logger, m *mq.Metrics) (Consumers, error) {
	var cs Consumers
	for _, g := range groups {
		sub := mq.FromConfig(g, rate)
		sub.Batch = batchFor(g, batches)
		c, err := mq.Subscribe(ctx, cfg, sub, dispatch(g, handlers), log, m)
		if err != nil {
			cs.Close()
			return nil, fmt.Errorf("subscribe %s: %w", g.GroupID, err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// batchFor is the batch handler of a group whose consumers all name the same
// handler, if it has one.
func batchFor(g config.ConsumerGroup, batches map[string]mq.BatchHandler) mq.BatchHandler {
	if len(g.Consumers) == 0 {
		return nil
	}
	name := g.Consumers[0].Handler
	for _, c := range g.Consumers[1:] {
		if c.Handler != name {
			return nil
		}
	}
	return batches[name]
}

// dispatch routes a group's messages to the handler its config names for the
// message's topic.
func dispatch(g config.ConsumerGroup, handlers map[string]mq.Handler) mq.Handler {
	byTopic := map[string]mq.Handler{}
	names := map[string]bool{}
	for _, c := range g.Consumers {
		byTopic[c.Topic] = handlers[c.Handler]
		names[c.Handler] = true
	}
	if len(names) == 1 {
		// One handler for the whole group: no lookup, so a redelivered
		// message is handled whatever topic name the client reports for it.
		return handlers[g.Consumers[0].Handler]
	}
	return func(ctx context.Context, msg mq.Message) error {
		h, ok := byTopic[msg.Topic]
		if !ok {
			return fmt.Errorf("group %s: no handler for topic %q: %w", g.GroupID, msg.Topic, mq.ErrPermanent)
		}
		return h(ctx, msg)
	}
}

// CloseLogged calls close and logs its error at Warn as "close <what>"; for
// deferred closes at shutdown, where there is no caller left to return to.
func CloseLogged(log *slog.Logger, what string, close func() error) {
	if err := close(); err != nil {
		log.Warn("close "+what, "err", err)
	}
}
