package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/go-sql-driver/mysql"

	"seckill/pkg/config"
	"seckill/pkg/events"
	"seckill/pkg/logging"
)

// Handler names the rocketmq.consumerGroups[].consumers[].handler keys may use.
const (
	handlerReserve = "inventory.reserve"
	handlerLedger  = "inventory.ledger"
)

var knownHandlers = []string{handlerReserve, handlerLedger}

// Config is inventory-service's configuration: defaults, then the YAML file
// named by CONFIG_FILE (optional), then the environment.
type Config struct {
	HTTPAddr    string          `yaml:"httpAddr"`
	MySQLDSN    string          `yaml:"mysqlDSN"`
	RedisAddr   string          `yaml:"redisAddr"`
	RedisDB     int             `yaml:"redisDB"`
	ConsumeRate float64         `yaml:"consumeRate"` // msg/s per group
	AdminToken  string          `yaml:"adminToken"`
	RocketMQ    config.RocketMQ `yaml:"rocketmq"`
}

func defaultConfig() Config {
	return Config{
		HTTPAddr:    ":8082",
		MySQLDSN:    "root@tcp(127.0.0.1:3306)/seckill_inventory?parseTime=true&loc=UTC",
		RedisAddr:   "127.0.0.1:6379",
		ConsumeRate: 200,
		RocketMQ: config.RocketMQ{
			NameSrvAddr: "127.0.0.1:9876",
			ConsumerGroups: []config.ConsumerGroup{
				{
					GroupID: "GID-inventory",
					Model:   config.ModelClustering,
					Consumers: []config.Consumer{{
						Topic: events.TopicOrder, Tag: events.TagCreated + " || " + events.TagClosed, Handler: handlerReserve,
					}},
				},
				{
					GroupID: "GID-inventory-ledger",
					Model:   config.ModelClustering,
					Orderly: true,
					Consumers: []config.Consumer{{
						Topic: events.TopicStockLedger, Tag: "*", Handler: handlerLedger,
					}},
				},
			},
		},
	}
}

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
	o := config.NewOverridesFrom(envMap(env, "HTTP_ADDR", "MYSQL_DSN", "REDIS_ADDR", "REDIS_DB",
		"CONSUME_RATE", "ADMIN_TOKEN", "ROCKETMQ_NAMESRV", "ROCKETMQ_ACCESS_KEY", "ROCKETMQ_SECRET_KEY"))
	o.String("HTTP_ADDR", &cfg.HTTPAddr)
	o.String("MYSQL_DSN", &cfg.MySQLDSN)
	o.String("REDIS_ADDR", &cfg.RedisAddr)
	o.Int("REDIS_DB", &cfg.RedisDB)
	o.Float("CONSUME_RATE", &cfg.ConsumeRate)
	o.String("ADMIN_TOKEN", &cfg.AdminToken)
	cfg.RocketMQ.ApplyEnv(o)
	if err := errors.Join(o.Err(), cfg.Validate()); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func envMap(env func(string) (string, bool), keys ...string) map[string]string {
	m := map[string]string{}
	for _, k := range keys {
		if v, ok := env(k); ok {
			m[k] = v
		}
	}
	return m
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
	if c.AdminToken == "" {
		errs = append(errs, errors.New("adminToken: empty (set ADMIN_TOKEN)"))
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
	m.AdminToken = logging.Secret(c.AdminToken).String()
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
		slog.String("adminToken", m.AdminToken),
		slog.Any("rocketmq", c.RocketMQ), // config.RocketMQ masks its own keys
	)
}

// printConfig writes the masked config as one JSON line (for -check-config).
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
	// The keys are the YAML keys, so the output reads like the file.
	b, err := json.Marshal(map[string]any{
		"httpAddr": m.HTTPAddr, "mysqlDSN": m.MySQLDSN, "redisAddr": m.RedisAddr, "redisDB": m.RedisDB,
		"consumeRate": m.ConsumeRate, "adminToken": m.AdminToken,
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
