package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"seckill/pkg/config"
	"seckill/pkg/db"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

// TestRunServesAndStops runs the whole service in-process against the
// embedded broker, the real MariaDB and Redis: a sale is created over HTTP, a
// created order is consumed and ledgered, and cancelling the context stops it cleanly.
func TestRunServesAndStops(t *testing.T) {
	b := testbroker.Start(t)
	dsn := testenv.MariaDBDSN(t)
	rdb := testenv.Redis(t)
	addr := testenv.FreeAddr(t)

	env := map[string]string{
		"HTTP_ADDR": addr, "MYSQL_DSN": dsn, "ADMIN_TOKEN": "tok-run", "ROCKETMQ_NAMESRV": b.NameSrvAddr(),
		"CONFIG_FILE": "", "REDIS_ADDR": rdb.Options().Addr, "REDIS_DB": "", "ROCKETMQ_ACCESS_KEY": "", "ROCKETMQ_SECRET_KEY": "",
	}
	if raceEnabled {
		// The default groups, with the ledger consumed concurrently.
		cfg := defaultConfig()
		cfg.RocketMQ.ConsumerGroups[1].Orderly = false
		b, err := yaml.Marshal(map[string]any{"rocketmq": map[string]any{"consumerGroups": cfg.RocketMQ.ConsumerGroups}})
		if err != nil {
			t.Fatal(err)
		}
		env["CONFIG_FILE"] = filepath.Join(t.TempDir(), "inventory.yaml")
		if err := os.WriteFile(env["CONFIG_FILE"], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range env {
		t.Setenv(k, v) // run reads the environment, as in main
	}
	if _, err := loadConfig(config.NewOverrides()); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(t.Output(), nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, log) }()

	testenv.Poll(t, time.Minute, "healthz", func() error { return httpx.Probe(addr) })
	testenv.CheckReady(t, "http://"+addr, "mysql", "redis", "broker", "consumers")
	product := testenv.Unique(t, "p")
	t.Cleanup(func() {
		rdb.Del(context.Background(), events.StockKey(product), events.InfoKey(product), events.UsersKey(product))
	})
	req, _ := http.NewRequest(http.MethodPut, "http://"+addr+"/api/v1/products/"+product,
		strings.NewReader(`{"name":"n","price_cents":5,"stock":3,"per_user_limit":1}`))
	req.Header.Set("Authorization", "Bearer tok-run")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT product = %v %v, want 200", resp, err)
	}
	resp.Body.Close()

	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{b.NameSrvAddr()}}, "PID-test", log, mq.NewMetrics(prometheus.NewRegistry(), "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	orderID := testenv.Unique(t, "o")
	now := time.Now().UTC()
	body, _ := json.Marshal(events.Created(events.OrderCreated{
		OrderID: orderID, UserID: "u1", ProductID: product, Quantity: 1, CreatedAt: now, PayDeadline: now.Add(time.Minute),
	}))
	if _, err := p.SendSync(t.Context(), mq.Outgoing{Topic: events.TopicOrder, Tag: events.TagCreated, Keys: []string{orderID}, ShardingKey: orderID, Body: body}); err != nil {
		t.Fatal(err)
	}
	gdb, err := db.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(gdb)
	testenv.Poll(t, time.Minute, "deduction ledgered", func() error {
		var sold, lines int
		if err := gdb.Raw("SELECT sold FROM products WHERE product_id = ?", product).Scan(&sold).Error; err != nil {
			return err
		}
		if err := gdb.Raw("SELECT COUNT(*) FROM stock_ledger WHERE order_id = ?", orderID).Scan(&lines).Error; err != nil {
			return err
		}
		if sold != 1 || lines != 1 {
			return fmt.Errorf("sold %d, ledger lines %d; want 1 and 1", sold, lines)
		}
		return nil
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run() after cancel = %v, want nil", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("run() did not return after cancel")
	}
}
