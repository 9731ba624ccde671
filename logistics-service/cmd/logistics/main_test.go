package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

// run wires everything: it creates the schema and the topic, ships a
// confirmed order, sends shipped, serves the shipment, and returns nil soon
// after its context ends (what SIGTERM does).
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

	status := func(url string) int {
		resp, err := http.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	base := "http://" + addr
	testenv.Eventually(t, time.Minute, "healthz", func() bool { return status(base+"/healthz") == http.StatusOK })
	testenv.CheckReady(t, base, "mysql", "broker", "consumers")

	producer, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-order-test", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	body, _ := json.Marshal(events.OrderConfirmed{Version: events.Version, EventID: "o1:confirmed", OrderID: "o1", ConfirmedAt: time.Now().UTC()})
	if _, err := producer.SendSync(t.Context(), mq.Outgoing{Topic: events.TopicOrder, Tag: events.TagConfirmed, Keys: []string{"o1"}, ShardingKey: "o1", Body: body}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, "the shipment", func() bool { return status(base+"/api/v1/shipments/o1") == http.StatusOK })
	testenv.Eventually(t, time.Minute, "the shipped event", func() bool {
		for _, m := range srv.Messages(events.TopicOrder) {
			if m.Tags == events.TagShipped && m.Keys == "o1" {
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
