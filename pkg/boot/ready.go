package boot

import (
	"context"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/pkg/httpx"
	"seckill/pkg/mq"
)

// Ready registers GET /readyz on e with checks, each bounded by
// httpx.CheckTimeout. A service lists what it cannot work without.
func Ready(e *gin.Engine, checks ...httpx.Check) {
	e.GET("/readyz", httpx.Ready(httpx.CheckTimeout, checks...))
}

// MySQLCheck is the "mysql" check: a ping on the service's pool.
func MySQLCheck(gdb *gorm.DB) httpx.Check {
	return httpx.Check{Name: "mysql", Run: func(ctx context.Context) error {
		sqlDB, err := gdb.DB()
		if err != nil {
			return err
		}
		return sqlDB.PingContext(ctx)
	}}
}

// RedisCheck is the "redis" check: PING.
func RedisCheck(rdb *redis.Client) httpx.Check {
	return httpx.Check{Name: "redis", Run: func(ctx context.Context) error {
		return rdb.Ping(ctx).Err()
	}}
}

// BrokerCheck is the "broker" check: the name servers route topic and its
// broker answers (mq.Reachable).
func BrokerCheck(cfg mq.Config, topic string) httpx.Check {
	return httpx.Check{Name: "broker", Run: func(ctx context.Context) error {
		return mq.Reachable(ctx, cfg, topic)
	}}
}

// Check is the "consumers" check: every consumer group of the service (none
// for a replica configured without groups) is started and not closing.
func (cs Consumers) Check() httpx.Check {
	return httpx.Check{Name: "consumers", Run: func(context.Context) error {
		var stopped []string
		for _, c := range cs {
			if !c.Running() {
				stopped = append(stopped, c.Group())
			}
		}
		if len(stopped) > 0 {
			return fmt.Errorf("not running: %s", strings.Join(stopped, ", "))
		}
		return nil
	}}
}
