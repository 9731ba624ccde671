// Package boot holds what every service's composition root shares: the
// settings all services have (HTTP address, MySQL DSN, consume rate, the
// rocketmq block, and Redis for the services that use it), their validation
// and masking, loading a config from defaults, a YAML file and the
// environment, and main's -check-config / -healthcheck handling.
//
// A service embeds Common (and Redis) inline in its own Config and keeps its
// own fields, defaults, handler names and environment variable names.
package boot

import (
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/go-sql-driver/mysql"

	"seckill/pkg/config"
)

// Common is the settings every service has. Embed it with `yaml:",inline"`.
type Common struct {
	HTTPAddr    string          `yaml:"httpAddr" json:"httpAddr"`
	MySQLDSN    string          `yaml:"mysqlDSN" json:"mysqlDSN"`
	ConsumeRate float64         `yaml:"consumeRate" json:"consumeRate"` // msg/s per group
	RocketMQ    config.RocketMQ `yaml:"rocketmq" json:"rocketmq"`       // marshals with its credentials masked
}

// Base returns c; through embedding it gives Load the shared settings of a
// service's Config.
func (c *Common) Base() *Common { return c }

// Addr is the address the service serves HTTP on (-healthcheck probes it).
func (c Common) Addr() string { return c.HTTPAddr }

// Check returns one error per invalid key, each naming it; the rocketmq
// block's consumers may name only knownHandlers.
func (c Common) Check(knownHandlers []string) []error {
	var errs []error
	if err := checkHostPort(c.HTTPAddr); err != nil {
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
	if c.ConsumeRate <= 0 || c.ConsumeRate > 100_000 {
		errs = append(errs, fmt.Errorf("consumeRate: %g out of (0, 100000] msg/s", c.ConsumeRate))
	}
	return append(errs, Leaves(c.RocketMQ.Validate(knownHandlers))...)
}

// Masked is c fit for logs and -check-config: the DSN password is "***"
// (the rocketmq block masks its own credentials when marshalled or logged).
func (c Common) Masked() Common {
	c.MySQLDSN = MaskDSN(c.MySQLDSN)
	return c
}

// Redis is the Redis settings of a service that uses Redis. Embed it with
// `yaml:",inline"` next to Common.
type Redis struct {
	RedisAddr string `yaml:"redisAddr" json:"redisAddr"`
	RedisDB   int    `yaml:"redisDB" json:"redisDB"`
}

// Check returns one error per invalid key, each naming it.
func (r Redis) Check() []error {
	var errs []error
	if err := checkHostPort(r.RedisAddr); err != nil {
		errs = append(errs, fmt.Errorf("redisAddr: %w", err))
	}
	if r.RedisDB < 0 || r.RedisDB > 15 {
		errs = append(errs, fmt.Errorf("redisDB: %d out of 0..15", r.RedisDB))
	}
	return errs
}

func checkHostPort(addr string) error {
	if addr == "" {
		return errors.New("empty")
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	return nil
}

// MaskDSN replaces the password of a go-sql-driver DSN with "***". A DSN that
// does not parse comes back as "(unparsable)": it might hold a password.
func MaskDSN(dsn string) string {
	d, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparsable)"
	}
	if d.Passwd == "" {
		return dsn
	}
	d.Passwd = "***"
	return d.FormatDSN()
}

// Loadable is a service's Config: it embeds Common and validates itself.
type Loadable interface {
	Base() *Common
	Validate() error
}

// Load fills cfg, which holds the service's defaults, from the YAML file at
// path (strict: an unknown key is an error naming it; no file when path is
// empty), then calls env to apply the environment overrides o collects, then
// validates. A file's rocketmq.consumerGroups replace the default groups; a
// file without them keeps the defaults. The error joins one error per bad
// variable and per invalid key, variables first.
func Load(cfg Loadable, path string, o *config.Overrides, env func()) error {
	if path != "" {
		base := cfg.Base()
		defaults := base.RocketMQ.ConsumerGroups
		base.RocketMQ.ConsumerGroups = nil
		if err := config.LoadYAML(path, cfg); err != nil {
			return err
		}
		if base.RocketMQ.ConsumerGroups == nil {
			base.RocketMQ.ConsumerGroups = defaults
		}
	}
	env()
	return errors.Join(append(Leaves(o.Err()), Leaves(cfg.Validate())...)...)
}

// Leaves lists the leaves of joined errors (nested joins included), err
// itself when it is not a join, and nothing for nil.
func Leaves(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, Leaves(e)...)
	}
	return out
}

// LogErrors logs err at Error under msg, one line per leaf (so every invalid
// config key gets its own line), each under the "err" key.
func LogErrors(log *slog.Logger, msg string, err error) {
	for _, e := range Leaves(err) {
		log.Error(msg, "err", e)
	}
}
