package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

// run wires everything: it creates the schema and the topic, consumes
// created, serves the pay API, sends paid, and returns nil soon after its
// context ends (what SIGTERM does).
func TestRun(t *testing.T) {
	srv := testbroker.Start(t)
	addr := testenv.FreeAddr(t)
	t.Setenv("HTTP_ADDR", addr)
	t.Setenv("MYSQL_DSN", testenv.MariaDBDSN(t))
	t.Setenv("ROCKETMQ_NAMESRV", srv.NameSrvAddr())
	t.Setenv("CONFIG_FILE", "")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, slog.New(slog.NewJSONHandler(t.Output(), nil))) }()

	base := "http://" + addr
	testenv.Eventually(t, time.Minute, "healthz", func() bool { return get(t, base+"/healthz") == http.StatusOK })
	testenv.CheckReady(t, base, "mysql", "redis", "broker", "consumers")

	producer, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-order-test", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	now := time.Now().UTC()
	body, _ := json.Marshal(events.Created(events.OrderCreated{OrderID: "o1", UserID: "u1", ProductID: "p1", Quantity: 1,
		AmountCents: 42, CreatedAt: now, PayDeadline: now.Add(time.Hour)}))
	if _, err := producer.SendSync(t.Context(), mq.Outgoing{Topic: events.TopicOrder, Tag: events.TagCreated, Keys: []string{"o1"}, ShardingKey: "o1", Body: body}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the pending payment", func() bool { return get(t, base+"/api/v1/payments/o1") == http.StatusOK })

	resp, err := http.Post(base+"/api/v1/payments/o1", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/payments/o1 = %d %s, want 200", resp.StatusCode, b)
	}
	testenv.Eventually(t, time.Minute, "the paid event", func() bool {
		for _, m := range srv.Messages(events.TopicOrder) {
			if m.Tags == events.TagPaid && m.Keys == "o1" {
				return true
			}
		}
		return false
	})

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run() = %v after shutdown, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("run did not return within 15 s of shutdown")
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
