package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"seckill/pkg/httpx"
)

func ok(context.Context) error { return nil }

// hang ignores its context, like a dependency that accepts a connection and
// never answers, until the test ends.
func hang(t *testing.T) func(context.Context) error {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	return func(context.Context) error { <-release; return nil }
}

func TestReady(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		checks     []httpx.Check
		wantStatus int
		wantBody   map[string]any
	}{
		{"no checks", nil, 200, map[string]any{"status": "ready", "checks": map[string]any{}}},
		{"all pass", []httpx.Check{{"mysql", ok}, {"broker", ok}}, 200,
			map[string]any{"status": "ready", "checks": map[string]any{"mysql": "ok", "broker": "ok"}}},
		{"one fails", []httpx.Check{{"mysql", ok}, {"broker", func(context.Context) error { return errors.New("route of ORDER: connection refused") }}}, 503,
			map[string]any{"status": "not_ready", "not_ready": []any{"broker"},
				"checks": map[string]any{"mysql": "ok", "broker": "route of ORDER: connection refused"}}},
		{"two fail, named in check order", []httpx.Check{{"redis", func(context.Context) error { return errors.New("down") }}, {"mysql", ok}, {"consumers", func(context.Context) error { return errors.New("GID-x closed") }}}, 503,
			map[string]any{"status": "not_ready", "not_ready": []any{"redis", "consumers"},
				"checks": map[string]any{"redis": "down", "mysql": "ok", "consumers": "GID-x closed"}}},
		{"a hanging check times out", []httpx.Check{{"mysql", hang(t)}, {"redis", ok}}, 503,
			map[string]any{"status": "not_ready", "not_ready": []any{"mysql"},
				"checks": map[string]any{"mysql": "no answer within 50ms", "redis": "ok"}}},
		{"a check that honours its context", []httpx.Check{{"redis", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}}, 503,
			map[string]any{"status": "not_ready", "not_ready": []any{"redis"}, "checks": map[string]any{"redis": "no answer within 50ms"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := httpx.NewEngine(slog.New(slog.DiscardHandler), nil, "test")
			e.GET("/readyz", httpx.Ready(50*time.Millisecond, tc.checks...))
			start := time.Now()
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("GET /readyz took %s, want the check timeout (50ms) to bound it", took)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("GET /readyz body %q: %v", rec.Body.String(), err)
			}
			if rec.Code != tc.wantStatus {
				t.Errorf("GET /readyz status = %d, want %d", rec.Code, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.wantBody, body); diff != "" {
				t.Errorf("GET /readyz body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestProbePath: -readycheck fails on a 503 and quotes what is not ready.
func TestProbePath(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	e := httpx.NewEngine(log, nil, "test")
	e.GET("/readyz", httpx.Ready(time.Second, httpx.Check{Name: "broker", Run: func(context.Context) error { return errors.New("down") }}))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- httpx.ServeListener(ctx, ln, e, log) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()
	deadline := time.Now().Add(5 * time.Second)
	for httpx.Probe(addr) != nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := httpx.Probe(addr); err != nil {
		t.Fatalf("Probe(%s) = %v, want nil (alive)", addr, err)
	}
	err = httpx.ProbePath(addr, "/readyz")
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), `"not_ready":["broker"]`) {
		t.Errorf("ProbePath(%s, /readyz) = %v, want a 503 error naming broker", addr, err)
	}
}
