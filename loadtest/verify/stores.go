package verify

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// Services are the four databases, in the order Stores lists them.
var Services = []string{"order", "inventory", "payment", "logistics"}

// Conn says where the stores are. Each service's DSN is the server DSN with
// the database DBPrefix+<service> (seckill_order, ...), unless set on its own.
type Conn struct {
	MySQL     string            // server DSN, e.g. root@tcp(127.0.0.1:3306)/
	DBPrefix  string            // database name prefix (seckill_)
	DSN       map[string]string // per-service DSN overrides
	RedisAddr string
	RedisDB   int
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// RegisterFlags adds -mysql, -db-prefix, -<svc>-dsn, -redis and -redis-db to
// fs, with defaults from the environment (MYSQL_SERVER_DSN, DB_PREFIX,
// <SVC>_MYSQL_DSN, REDIS_ADDR, REDIS_DB) or the local `make run` setup.
func (c *Conn) RegisterFlags(fs *flag.FlagSet) {
	c.DSN = map[string]string{}
	fs.StringVar(&c.MySQL, "mysql", getenv("MYSQL_SERVER_DSN", "root@tcp(127.0.0.1:3306)/"), "MariaDB server DSN (env MYSQL_SERVER_DSN)")
	fs.StringVar(&c.DBPrefix, "db-prefix", getenv("DB_PREFIX", "seckill_"), "database name prefix: <prefix>order, <prefix>inventory, ... (env DB_PREFIX)")
	for _, s := range Services {
		fs.Func(s+"-dsn", "DSN of the "+s+" database, overrides -mysql/-db-prefix (env "+envName(s)+")", func(v string) error {
			c.DSN[s] = v
			return nil
		})
		if v := os.Getenv(envName(s)); v != "" {
			c.DSN[s] = v
		}
	}
	fs.StringVar(&c.RedisAddr, "redis", getenv("REDIS_ADDR", "127.0.0.1:6379"), "Redis address (env REDIS_ADDR)")
	db, _ := strconv.Atoi(getenv("REDIS_DB", "0"))
	fs.IntVar(&c.RedisDB, "redis-db", db, "Redis database index (env REDIS_DB)")
}

func envName(svc string) string {
	b := []byte(svc)
	for i := range b {
		b[i] -= 'a' - 'A'
	}
	return string(b) + "_MYSQL_DSN"
}

// dsn returns the DSN of svc's database, with parseTime on.
func (c *Conn) dsn(svc string) (string, error) {
	src := c.DSN[svc]
	cfg, err := mysql.ParseDSN(src)
	if src == "" {
		cfg, err = mysql.ParseDSN(c.MySQL)
	}
	if err != nil {
		return "", fmt.Errorf("%s DSN: %w", svc, err)
	}
	if src == "" {
		cfg.DBName = c.DBPrefix + svc
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	return cfg.FormatDSN(), nil
}

// Open connects to the four databases and Redis and pings each. Close the
// result with Stores.Close.
func Open(ctx context.Context, c Conn) (Stores, error) {
	var s Stores
	dbs := make([]*sql.DB, len(Services))
	for i, svc := range Services {
		dsn, err := c.dsn(svc)
		if err != nil {
			s.Close()
			return Stores{}, err
		}
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			s.Close()
			return Stores{}, fmt.Errorf("open %s database: %w", svc, err)
		}
		db.SetMaxOpenConns(4)
		dbs[i] = db
		s.Order, s.Inventory, s.Payment, s.Logistics = dbs[0], dbs[1], dbs[2], dbs[3]
		if err := db.PingContext(ctx); err != nil {
			s.Close()
			return Stores{}, fmt.Errorf("ping %s database: %w", svc, err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: c.RedisAddr, DB: c.RedisDB})
	s.Redis = rdb
	if err := rdb.Ping(ctx).Err(); err != nil {
		s.Close()
		return Stores{}, fmt.Errorf("ping redis %s db %d: %w", c.RedisAddr, c.RedisDB, err)
	}
	return s, nil
}

// Close closes every connection Open made.
func (s Stores) Close() error {
	var errs []error
	for _, db := range []*sql.DB{s.Order, s.Inventory, s.Payment, s.Logistics} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	if s.Redis != nil {
		errs = append(errs, s.Redis.Close())
	}
	return errors.Join(errs...)
}
