package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/go-sql-driver/mysql"

	"seckill/pkg/config"
	"seckill/pkg/events"
)

// handlerApply is the consumer handler name the rocketmq block may reference.
const handlerApply = "payment.apply"

// Config is payment-service's configuration: defaults, then the YAML file
// named by CONFIG_FILE (optional), then the environment.
type Config struct {
	HTTPAddr    string          `yaml:"httpAddr"`    // HTTP_ADDR
	MySQLDSN    string          `yaml:"mysqlDSN"`    // MYSQL_DSN
	ConsumeRate float64         `yaml:"consumeRate"` // CONSUME_RATE, msg/s per group
	RocketMQ    config.RocketMQ `yaml:"rocketmq"`    // ROCKETMQ_NAMESRV, ROCKETMQ_ACCESS_KEY, ROCKETMQ_SECRET_KEY
}

func defaultConfig() Config {
	return Config{
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
	}
}

// loadConfig reads the configuration through o (the environment, or a map in
// tests) and reports every invalid key at once.
func loadConfig(o *config.Overrides) (Config, error) {
	cfg := defaultConfig()
	var path string
	o.String("CONFIG_FILE", &path)
	if path != "" {
		if err := config.LoadYAML(path, &cfg); err != nil {
			return Config{}, err
		}
	}
	o.String("HTTP_ADDR", &cfg.HTTPAddr)
	o.String("MYSQL_DSN", &cfg.MySQLDSN)
	o.Float("CONSUME_RATE", &cfg.ConsumeRate)
	cfg.RocketMQ.ApplyEnv(o)
	// Bad variables and invalid values together: one line per key.
	if envErr := o.Err(); envErr != nil {
		return Config{}, errors.Join(append(unjoin(envErr), unjoin(cfg.Validate())...)...)
	}
	return cfg, cfg.Validate()
}

// Validate returns one error per invalid key, each naming it.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("httpAddr: %q is not [host]:port", c.HTTPAddr))
	}
	if _, err := mysql.ParseDSN(c.MySQLDSN); err != nil {
		errs = append(errs, fmt.Errorf("mysqlDSN: %w", err))
	}
	if c.ConsumeRate <= 0 {
		errs = append(errs, fmt.Errorf("consumeRate: %v, want > 0", c.ConsumeRate))
	}
	if err := c.RocketMQ.Validate([]string{handlerApply}); err != nil {
		errs = append(errs, unjoin(err)...) // one line per key
	}
	return errors.Join(errs...)
}

// LogValue masks the DSN password and the RocketMQ credentials.
func (c Config) LogValue() slog.Value {
	dsn := "(unparsable)" // might hold a password
	if d, err := mysql.ParseDSN(c.MySQLDSN); err == nil {
		if d.Passwd != "" {
			d.Passwd = "***"
		}
		dsn = d.FormatDSN()
	}
	return slog.GroupValue(
		slog.String("httpAddr", c.HTTPAddr),
		slog.String("mysqlDSN", dsn),
		slog.Float64("consumeRate", c.ConsumeRate),
		slog.Any("rocketmq", c.RocketMQ),
	)
}

// unjoin returns the errors an errors.Join holds, err itself otherwise.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}
