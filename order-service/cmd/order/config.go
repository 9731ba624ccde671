package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"seckill/order-service/internal/intake"
	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/events"
)

// Handler names the rocketmq.consumerGroups[].consumers[].handler keys may use.
const (
	handlerApply   = "order.apply"
	handlerSoldOut = "order.soldout"
	handlerStats   = "order.stats"
)

var knownHandlers = []string{handlerApply, handlerSoldOut, handlerStats}

// Config is order-service's configuration: defaults, then the YAML file named
// by CONFIG_FILE (optional), then the environment.
type Config struct {
	boot.Common `yaml:",inline"` // httpAddr, mysqlDSN, consumeRate, rocketmq
	boot.Redis  `yaml:",inline"` // redisAddr, redisDB
	// PayTimeoutLevel is the RocketMQ delay level 1..18 of the pay timeout;
	// its delay is the pay window (pay_deadline = acceptance + the delay).
	PayTimeoutLevel int    `yaml:"payTimeoutLevel" json:"payTimeoutLevel"`
	OrderSendMode   string `yaml:"orderSendMode" json:"orderSendMode"` // outbox | batch | sync
	// OutboxMaxAge is the back-pressure bound: while the oldest order in
	// the outbox has waited longer for the broker, intake answers 503
	// unavailable with Retry-After. 0 turns it off.
	OutboxMaxAge time.Duration `yaml:"outboxMaxAge" json:"outboxMaxAge"`
}

func defaultConfig() Config {
	return Config{
		Common: boot.Common{
			HTTPAddr:    ":8080",
			MySQLDSN:    "root@tcp(127.0.0.1:3306)/seckill_order?parseTime=true&loc=UTC",
			ConsumeRate: 200,
			RocketMQ: config.RocketMQ{
				NameSrvAddr: "127.0.0.1:9876",
				ConsumerGroups: []config.ConsumerGroup{
					{
						GroupID: "GID-order",
						Consumers: []config.Consumer{{
							Topic: events.TopicOrder, Handler: handlerApply,
							Tag: events.TagCreated + " || " + events.TagPaid + " || " + events.TagDeducted + " || " +
								events.TagClosed + " || " + events.TagShipped,
						}},
					},
					{
						GroupID:   "GID-order-soldout",
						Model:     config.ModelBroadcasting,
						Consumers: []config.Consumer{{Topic: events.TopicSoldOut, Tag: "*", Handler: handlerSoldOut}},
					},
					{
						GroupID:   "GID-order-stats",
						Consumers: []config.Consumer{{Topic: events.TopicOrderStats, Tag: "*", Handler: handlerStats}},
					},
				},
			},
		},
		Redis:           boot.Redis{RedisAddr: "127.0.0.1:6379"},
		PayTimeoutLevel: 5,
		OrderSendMode:   intake.ModeOutbox,
		OutboxMaxAge:    30 * time.Second,
	}
}

// loadConfig builds the Config from defaults, CONFIG_FILE and the environment
// o reads (the process's in main, a map in tests), and validates it.
func loadConfig(o *config.Overrides) (Config, error) {
	cfg := defaultConfig()
	var path string
	o.String("CONFIG_FILE", &path)
	err := boot.Load(&cfg, path, o, func() {
		o.String("HTTP_ADDR", &cfg.HTTPAddr)
		o.String("MYSQL_DSN", &cfg.MySQLDSN)
		o.String("REDIS_ADDR", &cfg.RedisAddr)
		o.Int("REDIS_DB", &cfg.RedisDB)
		o.Float("CONSUME_RATE", &cfg.ConsumeRate)
		o.Int("PAY_TIMEOUT_LEVEL", &cfg.PayTimeoutLevel)
		o.String("ORDER_SEND_MODE", &cfg.OrderSendMode)
		o.Duration("OUTBOX_MAX_AGE", &cfg.OutboxMaxAge)
		cfg.RocketMQ.ApplyEnv(o) // ROCKETMQ_NAMESRV, ROCKETMQ_ACCESS_KEY, ROCKETMQ_SECRET_KEY
	})
	if err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every invalid key at once, each error naming its key.
func (c Config) Validate() error {
	errs := append(c.Common.Check(knownHandlers), c.Redis.Check()...)
	if c.PayTimeoutLevel < 1 || c.PayTimeoutLevel > 18 {
		errs = append(errs, fmt.Errorf("payTimeoutLevel: %d out of 1..18 (RocketMQ delay levels)", c.PayTimeoutLevel))
	}
	if c.OutboxMaxAge < 0 {
		errs = append(errs, fmt.Errorf("outboxMaxAge: %s is negative (0 turns the bound off)", c.OutboxMaxAge))
	}
	switch c.OrderSendMode {
	case intake.ModeOutbox, intake.ModeBatch, intake.ModeSync:
	default:
		errs = append(errs, fmt.Errorf("orderSendMode: %q is not outbox, batch or sync", c.OrderSendMode))
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer (and -check-config's output) with the
// secrets masked, keyed like the YAML file.
func (c Config) LogValue() slog.Value {
	type plain Config // without this method
	m := plain(c)
	m.Common = c.Common.Masked()
	return slog.AnyValue(m)
}
