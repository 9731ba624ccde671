package main

import (
	"errors"
	"log/slog"

	"seckill/pkg/boot"
	"seckill/pkg/config"
	"seckill/pkg/events"
)

// handlerApply is the consumer handler name the rocketmq block may reference.
const handlerApply = "payment.apply"

// Config is payment-service's configuration: defaults, then the YAML file
// named by CONFIG_FILE (optional), then the environment.
type Config struct {
	boot.Common `yaml:",inline"` // httpAddr, mysqlDSN, consumeRate, rocketmq
}

func defaultConfig() Config {
	return Config{Common: boot.Common{
		HTTPAddr:    ":8081",
		MySQLDSN:    "root@tcp(127.0.0.1:3306)/seckill_payment?parseTime=true&loc=UTC",
		ConsumeRate: 200,
		RocketMQ: config.RocketMQ{
			NameSrvAddr: "127.0.0.1:9876",
			ConsumerGroups: []config.ConsumerGroup{{
				GroupID: "GID-payment",
				Consumers: []config.Consumer{{
					Topic:   events.TopicOrder,
					Tag:     events.TagCreated + " || " + events.TagClosed,
					Handler: handlerApply,
				}},
			}},
		},
	}}
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
	return errors.Join(c.Common.Check([]string{handlerApply})...)
}

// LogValue masks the DSN password and the RocketMQ credentials.
func (c Config) LogValue() slog.Value {
	type plain Config // without this method
	return slog.AnyValue(plain{Common: c.Common.Masked()})
}
