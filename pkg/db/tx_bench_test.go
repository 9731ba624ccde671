package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"seckill/pkg/testenv"
)

// BenchmarkHandlerTx runs the handler shape (BEGIN, claim insert, locking
// read, update, insert, COMMIT) the way the driver is configured: the
// default prepares, executes and closes a server-side statement for every
// parameterized query (three packets, two round trips); interpolateParams
// sends one text query; gorm's PrepareStmt reuses one prepared statement per
// connection. It reports the process CPU (user+sys) per transaction, which
// is what the consumers pay on this box: syscalls are expensive here. The
// last variant runs ten handler bodies in one transaction (what coalescing
// concurrent handlers into one commit buys); its figure is per body.
//
//	cd pkg && go test -run '^$' -bench HandlerTx -benchtime 3000x -count 3 ./db/
func BenchmarkHandlerTx(b *testing.B) {
	dsn := testenv.MariaDBDSN(b)
	for _, v := range []struct {
		name        string
		interpolate bool
		prepare     bool
		perTx       int // handler bodies per transaction
	}{
		{"prepare-per-query", false, false, 1},
		{"interpolate", true, false, 1},
		{"prepared-cache", false, true, 1},
		{"interpolate-10-per-tx", true, false, 10},
	} {
		b.Run(v.name, func(b *testing.B) {
			cfg, err := mysql.ParseDSN(dsn)
			if err != nil {
				b.Fatal(err)
			}
			cfg.InterpolateParams = v.interpolate
			gdb, err := gorm.Open(gormmysql.New(gormmysql.Config{DSNConfig: cfg}), &gorm.Config{
				Logger: logger.Discard, PrepareStmt: v.prepare, TranslateError: true})
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if sqlDB, err := gdb.DB(); err == nil {
					sqlDB.Close()
				}
			}()
			tbl := strings.ReplaceAll(v.name, "-", "_")
			for _, q := range []string{
				"DROP TABLE IF EXISTS claims_" + tbl, "DROP TABLE IF EXISTS stock_" + tbl, "DROP TABLE IF EXISTS moves_" + tbl,
				"CREATE TABLE claims_" + tbl + " (consumer VARCHAR(64), msg_key VARCHAR(128), PRIMARY KEY (consumer, msg_key))",
				"CREATE TABLE stock_" + tbl + " (id VARCHAR(64) PRIMARY KEY, sold BIGINT, stock BIGINT, updated_at DATETIME(3))",
				"CREATE TABLE moves_" + tbl + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, order_id VARCHAR(64), qty INT, created_at DATETIME(3))",
				"INSERT INTO stock_" + tbl + " VALUES ('p', 0, 1000000000, NOW())",
			} {
				if err := gdb.Exec(q).Error; err != nil {
					b.Fatal(err)
				}
			}
			handler := func(tx *gorm.DB, id string) error {
				if err := tx.Exec("INSERT INTO claims_"+tbl+" (consumer, msg_key) VALUES (?, ?), (?, ?)", "c", id, "c", id+":created").Error; err != nil {
					return err
				}
				var sold int64
				if err := tx.Raw("SELECT sold FROM stock_"+tbl+" WHERE id = ? FOR UPDATE", "p").Scan(&sold).Error; err != nil {
					return err
				}
				if err := tx.Exec("UPDATE stock_"+tbl+" SET sold = sold + ?, updated_at = ? WHERE id = ? AND sold + ? <= stock", 1, time.Now(), "p", 1).Error; err != nil {
					return err
				}
				return tx.Exec("INSERT INTO moves_"+tbl+" (order_id, qty, created_at) VALUES (?, ?, ?)", id, 1, time.Now()).Error
			}
			ctx := context.Background()
			serverBefore, before := testenv.ProcessCPU("mariadbd", "mysqld"), testenv.SelfCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i += v.perTx {
				err := gdb.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
					for j := i; j < min(i+v.perTx, b.N); j++ {
						if err := handler(tx, fmt.Sprintf("%d", j)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := testenv.SelfCPU() - before
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			if serverBefore >= 0 {
				b.ReportMetric(float64((testenv.ProcessCPU("mariadbd", "mysqld")-serverBefore).Microseconds())/float64(b.N), "server-cpu-µs/op")
			}
		})
	}
}
