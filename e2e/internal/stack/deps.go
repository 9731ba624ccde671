package stack

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
)

// Defaults of the local dependencies. The environment overrides them with the
// names pkg/testenv reads: MYSQL_DSN (a server DSN; its database name, if any,
// is replaced per service), REDIS_ADDR, and E2E_REDIS_DB for the index.
const (
	defaultMySQLDSN  = "root@tcp(127.0.0.1:3306)/?parseTime=true&loc=UTC"
	defaultRedisAddr = "127.0.0.1:6379"
	// DefaultRedisDB is the Redis database index the stack's services use, so
	// keys of other tests (DB 0) never mix with theirs.
	DefaultRedisDB = 9
)

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// mysqlConfig returns the server DSN config (no database selected).
func mysqlConfig(t testing.TB) *mysql.Config {
	dsn := getenv("MYSQL_DSN", defaultMySQLDSN)
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("MYSQL_DSN %q: %v", dsn, err)
	}
	c.DBName = ""
	c.ParseTime = true
	c.Loc = time.UTC
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	return c
}

// DSN returns the DSN of database name on the test server.
func DSN(t testing.TB, name string) string {
	c := mysqlConfig(t)
	c.DBName = name
	return c.FormatDSN()
}

// dsnVia is DSN with the server reached at addr ("" = the server's address).
func dsnVia(t testing.TB, name, addr string) string {
	c := mysqlConfig(t)
	c.DBName = name
	if addr != "" {
		c.Addr = addr
	}
	return c.FormatDSN()
}

// MySQLAddr is the host:port of the test MariaDB server.
func MySQLAddr(t testing.TB) string { return mysqlConfig(t).Addr }

// uniqueID returns a short random hex string.
func uniqueID() string {
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b[:])
}

// createDatabase creates a fresh database and returns a pool on it. The
// database is dropped in t.Cleanup. An unreachable server fails the test.
func createDatabase(t testing.TB, name string) *sql.DB {
	t.Helper()
	server, err := sql.Open("mysql", mysqlConfig(t).FormatDSN())
	if err != nil {
		t.Fatalf("open mariadb: %v", err)
	}
	t.Cleanup(func() { server.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := server.PingContext(ctx); err != nil {
		t.Fatalf("mariadb at %s unreachable (the end-to-end test needs it): %v", mysqlConfig(t).Addr, err)
	}
	if _, err := server.ExecContext(ctx, "CREATE DATABASE `"+name+"`"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context() is already canceled here.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if os.Getenv("E2E_KEEP_DB") != "" {
			t.Logf("keeping database %s (E2E_KEEP_DB set)", name)
			return
		}
		if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	pool, err := sql.Open("mysql", DSN(t, name))
	if err != nil {
		t.Fatalf("open database %s: %v", name, err)
	}
	t.Cleanup(func() { pool.Close() })
	return pool
}

// redisDB returns the Redis database index of the stack.
func redisDB(t testing.TB) int { return EnvRedisDB(t, "E2E_REDIS_DB", DefaultRedisDB, 0) }

// EnvRedisDB is the Redis database index the environment variable name
// holds, or def when it is unset; anything but an index lowest..15 fails
// the test.
func EnvRedisDB(t testing.TB, name string, def, lowest int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lowest || n > 15 {
		t.Fatalf("%s=%q: want a database index %d..15", name, s, lowest)
	}
	return n
}

// openRedis connects to the stack's Redis database and empties it. An
// unreachable server fails the test.
func openRedis(t testing.TB, addr string, db int) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: addr, DB: db})
	t.Cleanup(func() { rdb.Close() }) // registered first: runs after the flush below
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s unreachable (the end-to-end test needs it): %v", addr, err)
	}
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flush redis db %d: %v", db, err)
	}
	t.Cleanup(func() {
		// Runs after the services stopped; a failed run keeps its keys to look at.
		if !t.Failed() {
			_ = rdb.FlushDB(context.Background()).Err()
		}
	})
	return rdb
}

func dbName(run, svc string) string { return fmt.Sprintf("e2e_%s_%s", run, svc) }
