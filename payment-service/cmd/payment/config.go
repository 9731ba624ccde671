package main

import (
	"errors"
	"log/slog"

	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/events"
)

// Handler names the rocketmq.consumerGroups[].consumers[].handler keys may use.
const (
	handlerApply   = "payment.apply"
	handlerTimeout = "payment.timeout"
)

// Config is payment-service's configuration: defaults, then the YAML file
// named by CONFIG_FILE (optional), then the environment.
type Config struct {
	boot.Common `yaml:",inline"` // httpAddr, mysqlDSN, consumeRate, rocketmq
	// Redis is where the intake's reservations are: an order is payable
	// from its 202 on, before any consumer has seen it.
	boot.Redis `yaml:",inline"` // redisAddr, redisDB
}

func defaultConfig() Config {
	return Config{Common: boot.Common{
		HTTPAddr:    ":8081",
		MySQLDSN:    "root@tcp(127.0.0.1:3306)/seckill_payment?parseTime=true&loc=UTC",
		ConsumeRate: 200,
		RocketMQ: config.RocketMQ{
			NameSrvAddr: "127.0.0.1:9876",
			ConsumerGroups: []config.ConsumerGroup{
				{
					GroupID: "GID-payment",
					Consumers: []config.Consumer{{
						Topic:   events.TopicOrder,
						Tag:     events.TagCreated + " || " + events.TagClosed,
						Handler: handlerApply,
					}},
				},
				{
					// Its own group: pay timeouts are never stuck behind
					// GID-payment's backlog of created events.
					GroupID:   "GID-payment-timeout",
					Consumers: []config.Consumer{{Topic: events.TopicOrder, Tag: events.TagTimeout, Handler: handlerTimeout}},
				},
			},
		},
	},
		Redis: boot.Redis{RedisAddr: "127.0.0.1:6379"},
	}
}

// loadConfig reads the configuration through o (the environment, or a map in
// tests) and reports every invalid key at once.
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
		cfg.RocketMQ.ApplyEnv(o) // ROCKETMQ_NAMESRV, ROCKETMQ_ACCESS_KEY, ROCKETMQ_SECRET_KEY
	})
	if err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate returns one error per invalid key, each naming it.
func (c Config) Validate() error {
	return errors.Join(append(c.Common.Check([]string{handlerApply, handlerTimeout}), c.Redis.Check()...)...)
}

// LogValue masks the DSN password and the RocketMQ credentials.
func (c Config) LogValue() slog.Value {
	type plain Config // without this method
	return slog.AnyValue(plain{Common: c.Common.Masked(), Redis: c.Redis})
}
