package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"seckill/pkg/testenv"
)

// -metrics serves the broker process's Prometheus metrics, RSS included
// (what the load tool charts), until the broker stops.
func TestMetricsEndpoint(t *testing.T) {
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-namesrv", testenv.FreeAddr(t), "-broker", testenv.FreeAddr(t),
			"-metrics", addr, "-log-level", "error"})
	}()
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				body = string(b)
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /metrics not answered 200 within 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"\nprocess_resident_memory_bytes ", "\ntestbroker_delayed_pending 0\n", "\ngo_goroutines "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run() = %v after shutdown, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run() did not return within 10 s of shutdown")
	}
}
