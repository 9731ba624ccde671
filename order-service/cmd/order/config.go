package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/go-sql-driver/mysql"

	"seckill/order-service/internal/intake"
	"seckill/pkg/config"
	"seckill/pkg/events"
	"seckill/pkg/logging"
)

// Handler names the rocketmq.consumerGroups[].consumers[].handler keys may use.
const (
	handlerApply   = "order.apply"
	handlerTimeout = "order.timeout"
	handlerSoldOut = "order.soldout"
	handlerStats   = "order.stats"
)

var knownHandlers = []string{handlerApply, handlerTimeout, handlerSoldOut, handlerStats}

// Config is order-service's configuration: defaults, then the YAML file named
// by CONFIG_FILE (optional), then the environment.
type Config struct {
	HTTPAddr        string          `yaml:"httpAddr"`
	MySQLDSN        string          `yaml:"mysqlDSN"`
	RedisAddr       string          `yaml:"redisAddr"`
	RedisDB         int             `yaml:"redisDB"`
	ConsumeRate     float64         `yaml:"consumeRate"`     // msg/s per group
	PayTimeoutLevel int             `yaml:"payTimeoutLevel"` // RocketMQ delay level 1..18
	OrderSendMode   string          `yaml:"orderSendMode"`   // outbox | batch | sync
	RocketMQ        config.RocketMQ `yaml:"rocketmq"`
}

func defaultConfig() Config {
	return Config{
		HTTPAddr:        ":8080",
		MySQLDSN:        "root@tcp(127.0.0.1:3306)/seckill_order?parseTime=true&loc=UTC",
		RedisAddr:       "127.0.0.1:6379",
		ConsumeRate:     200,
		PayTimeoutLevel: 5,
		OrderSendMode:   intake.ModeOutbox,
		RocketMQ: config.RocketMQ{
			NameSrvAddr: "127.0.0.1:9876",
			ConsumerGroups: []config.ConsumerGroup{
				{
					GroupID: "GID-order",
					Consumers: []config.Consumer{{
						Topic: events.TopicOrder, Handler: handlerApply,
						Tag: events.TagCreated + " || " + events.TagPaid + " || " + events.TagShipped,
					}},
				},
				{
					GroupID:   "GID-order-timeout",
					Consumers: []config.Consumer{{Topic: events.TopicOrder, Tag: events.TagTimeout, Handler: handlerTimeout}},
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
	}
}

var envKeys = []string{"HTTP_ADDR", "MYSQL_DSN", "REDIS_ADDR", "REDIS_DB", "CONSUME_RATE", "PAY_TIMEOUT_LEVEL",
	"ORDER_SEND_MODE", "ROCKETMQ_NAMESRV", "ROCKETMQ_ACCESS_KEY", "ROCKETMQ_SECRET_KEY"}

// loadConfig builds the Config from defaults, CONFIG_FILE and the environment
// in env (os.LookupEnv in main), and validates it.
func loadConfig(env func(string) (string, bool)) (Config, error) {
	cfg := defaultConfig()
	if path, ok := env("CONFIG_FILE"); ok && path != "" {
		// A file's consumerGroups replace the defaults rather than merging with them.
		cfg.RocketMQ.ConsumerGroups = nil
		if err := config.LoadYAML(path, &cfg); err != nil {
			return Config{}, err
		}
		if cfg.RocketMQ.ConsumerGroups == nil {
			cfg.RocketMQ.ConsumerGroups = defaultConfig().RocketMQ.ConsumerGroups
		}
	}
	vals := map[string]string{}
	for _, k := range envKeys {
		if v, ok := env(k); ok {
			vals[k] = v
		}
	}
	o := config.NewOverridesFrom(vals)
	o.String("HTTP_ADDR", &cfg.HTTPAddr)
	o.String("MYSQL_DSN", &cfg.MySQLDSN)
	o.String("REDIS_ADDR", &cfg.RedisAddr)
	o.Int("REDIS_DB", &cfg.RedisDB)
	o.Float("CONSUME_RATE", &cfg.ConsumeRate)
	o.Int("PAY_TIMEOUT_LEVEL", &cfg.PayTimeoutLevel)
	o.String("ORDER_SEND_MODE", &cfg.OrderSendMode)
	cfg.RocketMQ.ApplyEnv(o)
	if err := errors.Join(o.Err(), cfg.Validate()); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every invalid key at once, each error naming its key.
func (c Config) Validate() error {
	var errs []error
	if err := validateHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("httpAddr: %w", err))
	}
	if c.MySQLDSN == "" {
		errs = append(errs, errors.New("mysqlDSN: empty"))
	} else if d, err := mysql.ParseDSN(c.MySQLDSN); err != nil {
		// The driver's message can quote the DSN, password included: keep it out.
		errs = append(errs, errors.New("mysqlDSN: not a valid go-sql-driver DSN (user:pass@tcp(host:port)/db?params)"))
	} else if d.DBName == "" {
		errs = append(errs, errors.New("mysqlDSN: no database name"))
	}
	if err := validateHostPort(c.RedisAddr); err != nil {
		errs = append(errs, fmt.Errorf("redisAddr: %w", err))
	}
	if c.RedisDB < 0 || c.RedisDB > 15 {
		errs = append(errs, fmt.Errorf("redisDB: %d out of 0..15", c.RedisDB))
	}
	if c.ConsumeRate <= 0 || c.ConsumeRate > 100_000 {
		errs = append(errs, fmt.Errorf("consumeRate: %g out of (0, 100000] msg/s", c.ConsumeRate))
	}
	if c.PayTimeoutLevel < 1 || c.PayTimeoutLevel > 18 {
		errs = append(errs, fmt.Errorf("payTimeoutLevel: %d out of 1..18 (RocketMQ delay levels)", c.PayTimeoutLevel))
	}
	switch c.OrderSendMode {
	case intake.ModeOutbox, intake.ModeBatch, intake.ModeSync:
	default:
		errs = append(errs, fmt.Errorf("orderSendMode: %q is not outbox, batch or sync", c.OrderSendMode))
	}
	if err := c.RocketMQ.Validate(knownHandlers); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validateHostPort(addr string) error {
	if addr == "" {
		return errors.New("empty")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// masked is a copy fit for logs and -check-config: secrets replaced by "***".
func (c Config) masked() Config {
	m := c
	m.RocketMQ.AccessKey = logging.Secret(c.RocketMQ.AccessKey).String()
	m.RocketMQ.SecretKey = logging.Secret(c.RocketMQ.SecretKey).String()
	if d, err := mysql.ParseDSN(c.MySQLDSN); err == nil && d.Passwd != "" {
		d.Passwd = "***"
		m.MySQLDSN = d.FormatDSN()
	}
	return m
}

// LogValue implements slog.LogValuer with the secrets masked.
func (c Config) LogValue() slog.Value {
	m := c.masked()
	return slog.GroupValue(
		slog.String("httpAddr", m.HTTPAddr),
		slog.String("mysqlDSN", m.MySQLDSN),
		slog.String("redisAddr", m.RedisAddr),
		slog.Int("redisDB", m.RedisDB),
		slog.Float64("consumeRate", m.ConsumeRate),
		slog.Int("payTimeoutLevel", m.PayTimeoutLevel),
		slog.String("orderSendMode", m.OrderSendMode),
		slog.Any("rocketmq", c.RocketMQ), // config.RocketMQ masks its own keys
	)
}

// printConfig writes the masked config as one JSON line (for -check-config),
// keyed like the YAML file.
func printConfig(w io.Writer, c Config) error {
	m := c.masked()
	groups := make([]map[string]any, 0, len(m.RocketMQ.ConsumerGroups))
	for _, g := range m.RocketMQ.ConsumerGroups {
		consumers := make([]map[string]any, 0, len(g.Consumers))
		for _, cs := range g.Consumers {
			consumers = append(consumers, map[string]any{"topic": cs.Topic, "tag": cs.Tag, "handler": cs.Handler})
		}
		groups = append(groups, map[string]any{
			"groupId": g.GroupID, "model": g.Model, "orderly": g.Orderly, "consumers": consumers,
		})
	}
	b, err := json.Marshal(map[string]any{
		"httpAddr": m.HTTPAddr, "mysqlDSN": m.MySQLDSN, "redisAddr": m.RedisAddr, "redisDB": m.RedisDB,
		"consumeRate": m.ConsumeRate, "payTimeoutLevel": m.PayTimeoutLevel, "orderSendMode": m.OrderSendMode,
		"rocketmq": map[string]any{
			"accessKey": m.RocketMQ.AccessKey, "secretKey": m.RocketMQ.SecretKey,
			"nameSrvAddr": m.RocketMQ.NameSrvAddr, "consumerGroups": groups,
		},
	})
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
