package mq

import (
	"strings"
	"testing"

	"seckill/pkg/testbroker"
)

// TestReachable: the readiness check of the broker passes while the broker
// serves the topic, and fails naming the cause when the topic has no route
// or the broker is gone.
func TestReachable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker: skipped under -short")
	}
	srv := testbroker.Start(t, func(o *testbroker.Options) { o.StrictTopics = true }) // unknown topics have no route, as in RocketMQ
	srv.CreateTopic("READY_T", 2)
	cfg := Config{NameServers: []string{srv.NameSrvAddr()}}
	if err := Reachable(t.Context(), cfg, "READY_T"); err != nil {
		t.Fatalf("Reachable(READY_T) with the broker up = %v, want nil", err)
	}
	if err := Reachable(t.Context(), cfg, "READY_NONE"); err == nil || !strings.Contains(err.Error(), "route of READY_NONE") {
		t.Errorf("Reachable(READY_NONE) = %v, want a route error naming the topic", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := Reachable(t.Context(), cfg, "READY_T"); err == nil {
		t.Errorf("Reachable(READY_T) with the broker closed = nil, want error")
	}
}
