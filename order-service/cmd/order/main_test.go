package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/logging"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

// testRedisDB keeps this test's outbox stream apart from other tests' keys.
const testRedisDB = 14

// TestRun runs the whole service against the embedded broker, MariaDB and
// Redis: orders are accepted and leave with their pay timeout, GID-order
// persists them and follows the paid, deducted and closed decisions
// (confirming a paid and deducted order once), the sell-out is broadcast,
// and SIGTERM-style shutdown is clean.
func TestRun(t *testing.T) {
	tests := []struct {
		name, mode string
		dup        int // every message stored this many times by the broker
	}{
		{"outbox", "outbox", 1},
		{"outbox, every message delivered 3 times", "outbox", 3},
		{"batch", "batch", 1},
		{"sync", "sync", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testRun(t, tc.mode, tc.dup) })
	}
}

func testRun(t *testing.T, mode string, dup int) {
	base := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: base.Options().Addr, DB: testRedisDB})
	t.Cleanup(func() { rdb.Close() })
	dsn := testenv.MariaDBDSN(t)
	srv := testbroker.Start(t, func(o *testbroker.Options) { o.DelayScale = 0.01 })
	srv.DuplicateDelivery(dup)

	product := testenv.Unique(t, "p")
	ctx := t.Context()
	rdb.Set(ctx, events.StockKey(product), 3, time.Hour)
	rdb.HSet(ctx, events.InfoKey(product), "price", 100, "limit", 1)
	rdb.Set(ctx, events.LoadedKey, testenv.RunID(t, rdb), time.Hour) // as inventory-service sets it
	t.Cleanup(func() {
		rdb.Del(context.Background(), events.StockKey(product), events.InfoKey(product), events.UsersKey(product), events.OutboxStream, events.LoadedKey)
	})

	addr := testenv.FreeAddr(t)
	for k, v := range map[string]string{
		"HTTP_ADDR": addr, "MYSQL_DSN": dsn, "REDIS_ADDR": base.Options().Addr, "REDIS_DB": fmt.Sprint(testRedisDB),
		"ROCKETMQ_NAMESRV": srv.NameSrvAddr(), "PAY_TIMEOUT_LEVEL": "1", "CONSUME_RATE": "1000", "ORDER_SEND_MODE": mode,
		"CONFIG_FILE": "", "ROCKETMQ_ACCESS_KEY": "", "ROCKETMQ_SECRET_KEY": "",
	} {
		t.Setenv(k, v) // run reads the environment, as in main
	}
	logs := &syncWriter{b: new(strings.Builder)}
	log := logging.NewWriter(logs, "order", slog.LevelInfo)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(runCtx, log) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base2 := "http://" + addr
	testenv.Eventually(t, 30*time.Second, "healthz", func() bool {
		resp, err := http.Get(base2 + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	testenv.CheckReady(t, base2, "mysql", "redis", "broker", "consumers")

	post := func(user string) (int, map[string]any) {
		resp, err := http.Post(base2+"/api/v1/orders", "application/json",
			strings.NewReader(fmt.Sprintf(`{"user_id":%q,"product_id":%q,"quantity":1}`, user, product)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	status := func(id string) string {
		resp, err := http.Get(base2 + "/api/v1/orders/" + id)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		s, _ := m["status"].(string)
		return s
	}
	var ids []string
	for i := range 3 {
		code, body := post(fmt.Sprintf("u%d", i))
		if code != http.StatusAccepted {
			t.Fatalf("POST #%d = %d %v, want 202", i, code, body)
		}
		ids = append(ids, body["order_id"].(string))
	}
	if code, body := post("u0"); code != http.StatusConflict {
		t.Errorf("POST after sell-out = %d %v, want 409", code, body)
	}
	// Each batch of accepted orders left with one delayed pay timeout
	// carrying them (level 1 at DelayScale 0.01: in the topic at once).
	testenv.Eventually(t, 30*time.Second, "pay timeouts carrying every order", func() bool {
		carried := map[string]bool{}
		for _, m := range srv.Messages(events.TopicOrder) {
			if m.Tags == events.TagTimeout {
				ev, err := events.Decode[events.PayTimeout](m.Body)
				if err != nil {
					t.Fatalf("timeout message %s: %v", m.MsgID, err)
				}
				for _, id := range ev.OrderIDs {
					carried[id] = true
				}
			}
		}
		return len(carried) == len(ids)
	})
	for _, id := range ids {
		testenv.Eventually(t, 30*time.Second, "order "+id+" persisted", func() bool { return status(id) == "created" })
	}
	// What payment-service and inventory-service decide, order-service
	// follows: ids[0] paid and deducted (confirmed once), ids[1] expired.
	producer, err := mq.NewProducer(ctx, mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-test",
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	send := func(tag, id string, ev any) {
		t.Helper()
		if _, err := producer.SendSync(ctx, mq.Outgoing{Topic: events.TopicOrder, Tag: tag, Keys: []string{id},
			ShardingKey: id, Body: events.Marshal(ev)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	send(events.TagPaid, ids[0], events.Paid(events.OrderPaid{OrderID: ids[0], AmountCents: 100, PaidAt: now}))
	send(events.TagDeducted, ids[0], events.Deducted(events.OrderDeducted{OrderID: ids[0], ProductID: product, Quantity: 1, SaleID: 1, DeductedAt: now}))
	send(events.TagClosed, ids[1], events.Closed(events.OrderClosed{OrderID: ids[1], ProductID: product, Quantity: 1,
		Reason: events.ReasonPayTimeout, ClosedAt: now}))
	testenv.Eventually(t, 30*time.Second, "order paid", func() bool { return status(ids[0]) == "paid" })
	testenv.Eventually(t, 30*time.Second, "order closed", func() bool { return status(ids[1]) == "closed" })
	testenv.Eventually(t, 30*time.Second, "the confirmed event relayed", func() bool {
		for _, m := range srv.Messages(events.TopicOrder) {
			if m.Tags == events.TagConfirmed && m.Keys == ids[0] {
				return true
			}
		}
		return false
	})
	if n := len(srv.Messages(events.TopicSoldOut)); n != dup {
		t.Errorf("SOLDOUT messages = %d, want %d", n, dup)
	}
	// Each effect happened once, however often its message was delivered:
	// wait for the counters, then check they stay exact.
	wants := []string{
		`order_status_transitions_total{status="created"} 3`,
		`order_status_transitions_total{status="paid"} 1`,
		`order_status_transitions_total{status="confirmed"} 1`,
		`order_status_transitions_total{status="closed"} 1`,
		`order_requests_total{result="accepted"} 3`,
		`order_requests_total{result="sold_out"} 1`,
	}
	metrics := func() string {
		resp, err := http.Get(base2 + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	missing := func() []string {
		m, out := metrics(), []string(nil)
		for _, want := range wants {
			if !strings.Contains(m, want+"\n") {
				out = append(out, want)
			}
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); len(missing()) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a late duplicate effect would show here
	for _, want := range missing() {
		t.Errorf("/metrics lacks %q", want)
	}
	if n := rdb.XLen(ctx, events.OutboxStream).Val(); n != 0 {
		t.Errorf("outbox length = %d, want 0", n)
	}
	confirmed := 0
	for _, m := range srv.Messages(events.TopicOrder) {
		if m.Tags == events.TagConfirmed {
			confirmed++
		}
	}
	if confirmed != dup { // stored dup times by the fault, sent once
		t.Errorf("confirmed messages = %d, want %d", confirmed, dup)
	}
	cancel()
	select {
	case err := <-done:
		done <- err // for Cleanup
		if err != nil {
			t.Errorf("run() = %v, want nil after shutdown", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run() did not return within 30 s of shutdown")
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) {
		t.Errorf("error logs:\n%s", logs.String())
	}
}

// TestSetGCPercent: GOGC defaults to intakeGCPercent and an explicit GOGC
// is left as the runtime read it.
func TestSetGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(orig) })

	t.Setenv("GOGC", "")
	if got := setGCPercent(); got != intakeGCPercent {
		t.Errorf("setGCPercent() without GOGC = %d, want %d", got, intakeGCPercent)
	}
	if got := debug.SetGCPercent(100); got != intakeGCPercent {
		t.Errorf("runtime GC percent without GOGC = %d, want %d", got, intakeGCPercent)
	}

	t.Setenv("GOGC", "150") // read by the runtime at start; here the runtime has 100
	if got := setGCPercent(); got != 100 {
		t.Errorf("setGCPercent() with GOGC set = %d, want the runtime's 100 untouched", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("runtime GC percent with GOGC set = %d, want 100 untouched", got)
	}
}
