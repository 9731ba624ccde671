// Package testenv gives integration tests the real MariaDB and Redis the
// machine runs: a fresh database per test (dropped in Cleanup), a Redis
// client, and unique names. Tests using it are skipped under -short; an
// unreachable dependency fails the test, it never skips silently.
//
// MYSQL_DSN (default root@tcp(127.0.0.1:3306)/) and REDIS_ADDR (default
// 127.0.0.1:6379) point it elsewhere.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/pkg/db"
)

const defaultDSN = "root@tcp(127.0.0.1:3306)/?parseTime=true&loc=UTC"

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs MariaDB/Redis: skipped under -short")
	}
}

func serverConfig(t testing.TB) *mysql.Config {
	t.Helper()
	dsn := os.Getenv("MYSQL_DSN")
	if dsn == "" {
		dsn = defaultDSN
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("testenv: MYSQL_DSN %q: %v", dsn, err)
	}
	cfg.ParseTime = true
	return cfg
}

// MariaDBDSN creates a fresh, empty database, drops it in Cleanup, and
// returns its DSN (for processes under test).
func MariaDBDSN(t testing.TB) string {
	t.Helper()
	skipShort(t)
	cfg := serverConfig(t)
	cfg.DBName = ""
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatalf("testenv: mariadb connector: %v", err)
	}
	server := sql.OpenDB(conn)
	t.Cleanup(func() { server.Close() })
	name := "t_" + strings.ToLower(Unique(t, ""))
	if len(name) > 64 {
		name = name[:48] + name[len(name)-16:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := server.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("testenv: MariaDB unreachable or unusable (%s): create database: %v", cfg.Addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := server.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("testenv: drop database %s: %v", name, err)
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// MariaDB opens a fresh database with the given migrations applied; the
// database is dropped and the pool closed in Cleanup.
func MariaDB(t testing.TB, migrations ...fs.FS) *gorm.DB {
	t.Helper()
	dsn := MariaDBDSN(t)
	ctx := context.Background()
	gdb, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { db.Close(gdb) }) // registered after the drop: runs before it
	for _, m := range migrations {
		if err := db.Migrate(ctx, gdb, m); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	return gdb
}

// Redis returns a client for REDIS_ADDR (default 127.0.0.1:6379), closed in
// Cleanup. Tests must keep to keys under a Unique prefix.
func Redis(t testing.TB) *redis.Client {
	t.Helper()
	skipShort(t)
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("testenv: Redis unreachable at %s: %v", addr, err)
	}
	return rdb
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9_]+`)

// Unique returns prefix followed by the test's name and random hex: unique
// across tests, runs and parallel processes, and safe in SQL identifiers and
// Redis keys.
func Unique(t testing.TB, prefix string) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random: %v", err)
	}
	name := unsafeChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 32 {
		name = name[len(name)-32:]
	}
	return fmt.Sprintf("%s%s_%s", prefix, name, hex.EncodeToString(b[:]))
}
