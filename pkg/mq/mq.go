// Package mq is the one place that talks to RocketMQ (rocketmq-client-go/v2).
// It sends messages (sync, async, oneway, batches grouped per queue by a
// sharding key), consumes them through push consumers with a single ack/retry
// decision, panic recovery, a token-bucket throttle and one log line per
// message, exports metrics, and creates topics.
//
// client-go keeps process-wide state: a client instance is shared by every
// producer/consumer with the same ClientID (IP@InstanceName), and the first
// one's group and callbacks win. Every Producer and Consumer here therefore
// gets its own InstanceName. client-go's own logger is routed into slog at
// Error level only (see quietClientLog).
package mq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/rlog"

	"seckill/pkg/config"
)

// Config says how to reach RocketMQ.
type Config struct {
	NameServers          []string // ip:port of each name server
	AccessKey, SecretKey string   // ACL credentials, used when AccessKey is set
	// InstanceName prefixes the client instance names; a random suffix keeps
	// every producer and consumer of a process apart. Empty: the group name.
	InstanceName string
	// BrokerAddrs are the broker masters EnsureTopics creates topics on.
	// Empty: discovered from the name server (see EnsureTopics).
	BrokerAddrs []string
}

// ConfigFrom builds a Config from the service's rocketmq block.
func ConfigFrom(r config.RocketMQ) Config {
	return Config{NameServers: r.NameServers(), AccessKey: r.AccessKey, SecretKey: r.SecretKey}
}

// LogValue masks the credentials.
func (c Config) LogValue() slog.Value {
	secret := ""
	if c.SecretKey != "" {
		secret = "***"
	}
	access := ""
	if c.AccessKey != "" {
		access = "***"
	}
	return slog.GroupValue(
		slog.Any("nameServers", c.NameServers),
		slog.String("accessKey", access),
		slog.String("secretKey", secret),
		slog.String("instanceName", c.InstanceName),
		slog.Any("brokerAddrs", c.BrokerAddrs),
	)
}

func (c Config) credentials() (primitive.Credentials, bool) {
	if c.AccessKey == "" {
		return primitive.Credentials{}, false
	}
	return primitive.Credentials{AccessKey: c.AccessKey, SecretKey: c.SecretKey}, true
}

func (c Config) resolver() primitive.NsResolver {
	return primitive.NewPassthroughResolver(c.NameServers)
}

func (c Config) validate() error {
	if len(c.NameServers) == 0 {
		return fmt.Errorf("mq config: no name server")
	}
	return nil
}

// instanceName returns a name unique in this process (and, with the pid,
// across processes on one host), starting with prefix.
func instanceName(prefix, fallback string) string {
	if prefix == "" {
		prefix = fallback
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), hex.EncodeToString(b[:]))
}

// delayLevels are RocketMQ's default messageDelayLevel.
var delayLevels = [...]time.Duration{
	1 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second,
	1 * time.Minute, 2 * time.Minute, 3 * time.Minute, 4 * time.Minute, 5 * time.Minute,
	6 * time.Minute, 7 * time.Minute, 8 * time.Minute, 9 * time.Minute, 10 * time.Minute,
	20 * time.Minute, 30 * time.Minute, 1 * time.Hour, 2 * time.Hour,
}

// MaxDelayLevel is the highest standard delay level.
const MaxDelayLevel = len(delayLevels)

// DelayDuration is the delay of a standard level 1..18 (1s ... 2h), 0 otherwise.
func DelayDuration(level int) time.Duration {
	if level < 1 || level > len(delayLevels) {
		return 0
	}
	return delayLevels[level-1]
}

var (
	clientLogOnce sync.Once
	clientLog     clientLogger
)

// quietClientLog routes client-go's logger (logrus, Info by default, very
// chatty) into slog at Error level only. client-go's logger is process-wide,
// so this is the one place deciding it: the first non-nil logger passed here
// receives client-go's errors (slog.Default until then).
// ROCKETMQ_CLIENT_LOG_LEVEL=warn|info|debug opens it up when debugging.
func quietClientLog(log *slog.Logger) {
	clientLogOnce.Do(func() {
		clientLog.min = slog.LevelError
		switch os.Getenv("ROCKETMQ_CLIENT_LOG_LEVEL") {
		case "debug":
			clientLog.min = slog.LevelDebug
		case "info":
			clientLog.min = slog.LevelInfo
		case "warn", "warning":
			clientLog.min = slog.LevelWarn
		}
		rlog.SetLogger(&clientLog)
	})
	if log != nil {
		clientLog.log.CompareAndSwap(nil, log.With("component", "rocketmq-client"))
	}
}

// clientLogger adapts rlog.Logger to slog.
type clientLogger struct {
	log atomic.Pointer[slog.Logger]
	min slog.Level
}

func (l *clientLogger) emit(level slog.Level, msg string, fields map[string]any) {
	if level == slog.LevelError && closedConn(fields) {
		// A connection this process closed (a shutdown racing a heartbeat):
		// expected, and the client reconnects if needed.
		level = slog.LevelWarn
	}
	if level < l.min {
		return // client-go is chatty below Error: build no attributes for it
	}
	attrs := make([]slog.Attr, 0, len(fields))
	for k, v := range fields {
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.Any(k, fmt.Sprint(v)))
	}
	log := l.log.Load()
	if log == nil {
		log = slog.Default()
	}
	log.LogAttrs(context.Background(), level, msg, attrs...) // rlog carries no context
}

// closedConn reports whether one of client-go's log fields is an error on a
// connection this process closed (net.ErrClosed).
func closedConn(fields map[string]any) bool {
	for _, v := range fields {
		if err, ok := v.(error); ok && errors.Is(err, net.ErrClosed) {
			return true
		}
	}
	return false
}

func (l *clientLogger) Debug(msg string, f map[string]any)   { l.emit(slog.LevelDebug, msg, f) }
func (l *clientLogger) Info(msg string, f map[string]any)    { l.emit(slog.LevelInfo, msg, f) }
func (l *clientLogger) Warning(msg string, f map[string]any) { l.emit(slog.LevelWarn, msg, f) }
func (l *clientLogger) Error(msg string, f map[string]any)   { l.emit(slog.LevelError, msg, f) }
func (l *clientLogger) Fatal(msg string, f map[string]any)   { l.emit(slog.LevelError, msg, f) }
func (l *clientLogger) Level(string)                         {}
func (l *clientLogger) OutputPath(string) error              { return nil }
