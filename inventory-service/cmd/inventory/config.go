package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"seckill/pkg/boot"
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
	boot.Common `yaml:",inline"` // httpAddr, mysqlDSN, consumeRate, rocketmq
	boot.Redis  `yaml:",inline"` // redisAddr, redisDB
	AdminToken  string           `yaml:"adminToken" json:"adminToken"`
	// StockCheckInterval is how often every product's Redis keys are checked
	// against the database (a lost product is rebuilt from it).
	StockCheckInterval time.Duration `yaml:"stockCheckInterval" json:"stockCheckInterval"`
	// StockRebuildGrace is how long a rebuild waits after the loss is seen
	// before recording the broker's offsets (sends under way land first).
	StockRebuildGrace time.Duration `yaml:"stockRebuildGrace" json:"stockRebuildGrace"`
}

func defaultConfig() Config {
	return Config{
		Common: boot.Common{
			HTTPAddr:    ":8082",
			MySQLDSN:    "root@tcp(127.0.0.1:3306)/seckill_inventory?parseTime=true&loc=UTC",
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
		},
		Redis:              boot.Redis{RedisAddr: "127.0.0.1:6379"},
		StockCheckInterval: time.Second,
		StockRebuildGrace:  10 * time.Second,
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
		o.String("ADMIN_TOKEN", &cfg.AdminToken)
		o.Duration("STOCK_CHECK_INTERVAL", &cfg.StockCheckInterval)
		o.Duration("STOCK_REBUILD_GRACE", &cfg.StockRebuildGrace)
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
	if c.AdminToken == "" {
		errs = append(errs, errors.New("adminToken: empty (set ADMIN_TOKEN)"))
	}
	if c.StockCheckInterval < 10*time.Millisecond || c.StockCheckInterval > time.Minute {
		errs = append(errs, fmt.Errorf("stockCheckInterval: %s out of [10ms, 1m]", c.StockCheckInterval))
	}
	if c.StockRebuildGrace <= 0 || c.StockRebuildGrace > 10*time.Minute {
		errs = append(errs, fmt.Errorf("stockRebuildGrace: %s out of (0, 10m]", c.StockRebuildGrace))
	}
	return errors.Join(errs...)
}

// LogValue implements slog.LogValuer (and -check-config's output) with the
// secrets masked, keyed like the YAML file.
func (c Config) LogValue() slog.Value {
	type plain Config // without this method
	m := plain(c)
	m.Common = c.Common.Masked()
	m.AdminToken = logging.Secret(c.AdminToken).String()
	// Durations as "1s", not nanoseconds (the outer fields hide the inner).
	return slog.AnyValue(struct {
		plain
		StockCheckInterval string `json:"stockCheckInterval"`
		StockRebuildGrace  string `json:"stockRebuildGrace"`
	}{m, c.StockCheckInterval.String(), c.StockRebuildGrace.String()})
}
