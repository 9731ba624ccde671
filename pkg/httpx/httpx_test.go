package httpx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"seckill/pkg/httpx"
)

type order struct {
	UserID   string `json:"user_id"`
	Quantity int    `json:"quantity"`
}

func engine(t *testing.T, logs *bytes.Buffer) *gin.Engine {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := httpx.NewEngine(log, prometheus.NewRegistry(), "test")
	e.POST("/orders", func(c *gin.Context) {
		var o order
		if err := httpx.DecodeJSON(c, &o); err != nil {
			var br *httpx.BadRequest
			if !errors.As(err, &br) {
				t.Errorf("DecodeJSON error %T, want *httpx.BadRequest", err)
			}
			c.JSON(http.StatusBadRequest, gin.H{"error": "invalid_request", "message": br.Message, "field": br.Field})
			return
		}
		c.JSON(http.StatusOK, o)
	})
	e.GET("/panic", func(c *gin.Context) { panic("secret internal detail") })
	return e
}

func do(e http.Handler, method, path, body string) (int, map[string]any) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var out map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out
}

func TestEngine(t *testing.T) {
	t.Parallel()
	big := `{"user_id":"` + strings.Repeat("x", httpx.MaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		want                     map[string]any
	}{
		{"healthz", "GET", "/healthz", "", 200, map[string]any{"status": "ok"}},
		{"valid body", "POST", "/orders", `{"user_id":"u1","quantity":2}`, 200, map[string]any{"user_id": "u1", "quantity": 2.0}},
		{"unknown route", "GET", "/nope", "", 404, map[string]any{"error": "not_found", "message": "no such endpoint"}},
		{"trailing slash", "GET", "/healthz/", "", 404, map[string]any{"error": "not_found", "message": "no such endpoint"}},
		{"trailing slash on POST", "POST", "/orders/", `{"user_id":"u1"}`, 404, map[string]any{"error": "not_found", "message": "no such endpoint"}},
		{"other case", "GET", "/HEALTHZ", "", 404, map[string]any{"error": "not_found", "message": "no such endpoint"}},
		{"double slash", "GET", "//healthz", "", 404, map[string]any{"error": "not_found", "message": "no such endpoint"}},
		{"wrong method", "DELETE", "/orders", "", 405, map[string]any{"error": "method_not_allowed", "message": "method not allowed on this endpoint"}},
		{"body over 1 MiB", "POST", "/orders", big, 413, map[string]any{"error": "body_too_large", "message": "request body larger than 1 MiB"}},
		{"panic", "GET", "/panic", "", 500, map[string]any{"error": "internal", "message": "internal error"}},
		{"unknown field", "POST", "/orders", `{"user_id":"u1","qty":1}`, 400, map[string]any{"error": "invalid_request", "field": "qty", "message": "unknown field"}},
		{"wrong type", "POST", "/orders", `{"user_id":"u1","quantity":"two"}`, 400, map[string]any{"error": "invalid_request", "field": "quantity", "message": "must be an integer"}},
		{"malformed", "POST", "/orders", `{"user_id":`, 400, map[string]any{"error": "invalid_request", "field": "", "message": "malformed JSON"}},
		{"syntax error", "POST", "/orders", `{"user_id" "u1"}`, 400, map[string]any{"error": "invalid_request", "field": "", "message": "malformed JSON"}},
		{"empty", "POST", "/orders", ``, 400, map[string]any{"error": "invalid_request", "field": "", "message": "body is empty"}},
		{"two values", "POST", "/orders", `{"user_id":"a"}{"user_id":"b"}`, 400, map[string]any{"error": "invalid_request", "field": "", "message": "body must hold a single JSON value"}},
		{"not an object", "POST", "/orders", `[1,2]`, 400, map[string]any{"error": "invalid_request", "field": "", "message": "must be an object"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			status, got := do(engine(t, &logs), tc.method, tc.path, tc.body)
			if status != tc.wantStatus {
				t.Errorf("%s %s status = %d, want %d", tc.method, tc.path, status, tc.wantStatus)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("%s %s body mismatch (-want +got):\n%s", tc.method, tc.path, diff)
			}
			if tc.name == "panic" && !strings.Contains(logs.String(), "secret internal detail") {
				t.Errorf("panic value not logged: %s", logs.String())
			}
		})
	}
}

// TestGinContextCarriesNoRequestContext: handlers must use
// c.Request.Context(); c itself neither cancels with the request nor
// carries its values.
func TestGinContextCarriesNoRequestContext(t *testing.T) {
	t.Parallel()
	type key struct{}
	e := httpx.NewEngine(slog.New(slog.DiscardHandler), nil, "test")
	var viaGin, viaRequest any
	var ginDone <-chan struct{}
	e.GET("/ctx", func(c *gin.Context) {
		viaGin, viaRequest = c.Value(key{}), c.Request.Context().Value(key{})
		ginDone = c.Done()
	})
	ctx, cancel := context.WithCancel(context.WithValue(t.Context(), key{}, "v"))
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/ctx", nil)
	e.ServeHTTP(httptest.NewRecorder(), req)
	if viaRequest != "v" {
		t.Fatalf("c.Request.Context().Value = %v, want v", viaRequest)
	}
	if viaGin != nil || ginDone != nil {
		t.Errorf("c.Value = %v, c.Done() = %v; want nil, nil (no fallback to the request context)", viaGin, ginDone)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := engine(t, &logs)
	do(e, "POST", "/orders", `{"user_id":"u1"}`)
	req := httptest.NewRequest("GET", "/metrics", nil)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `test_http_requests_total{method="POST",route="/orders",status="200"} 1`) {
		t.Errorf("GET /metrics = %d, body lacks the request counter:\n%s", rec.Code, rec.Body.String())
	}
}

func TestServeAndProbe(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- httpx.ServeListener(ctx, ln, httpx.NewEngine(log, nil, "test"), log) }()
	deadline := time.Now().Add(5 * time.Second)
	for httpx.Probe(addr) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("Probe(%s) never succeeded: %v", addr, httpx.Probe(addr))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ServeListener after cancel = %v, want nil", err)
	}
	if err := httpx.Probe(addr); err == nil {
		t.Errorf("Probe after shutdown = nil, want error")
	}
	if err := httpx.Serve(t.Context(), "256.0.0.1:1", nil, log); err == nil {
		t.Errorf("Serve on a bad address = nil, want error")
	}
}

// TestRequestLogLevel: a 503 asks the client to retry while a dependency
// recovers and is logged at Warn; any other 5xx is a failure (Error).
func TestRequestLogLevel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		want   string
	}{
		{http.StatusOK, "DEBUG"},
		{http.StatusConflict, "INFO"},
		{http.StatusServiceUnavailable, "WARN"},
		{http.StatusInternalServerError, "ERROR"},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			e := engine(t, &logs)
			e.GET("/status", func(c *gin.Context) { c.Status(tc.status) })
			do(e, "GET", "/status", "")
			var line struct{ Level, Msg string }
			if err := json.Unmarshal(logs.Bytes(), &line); err != nil || line.Msg != "http request" {
				t.Fatalf("request log = %q (%v), want one http request line", logs.String(), err)
			}
			if line.Level != tc.want {
				t.Errorf("request log level of a %d = %s, want %s", tc.status, line.Level, tc.want)
			}
		})
	}
}

// A handler whose dependency failed because its own client went away
// answers 499 (logged at Info, no Error line); the same error without the
// client gone, or another error, is left to the handler's mapping.
func TestClientGone(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := engine(t, &logs)
	e.GET("/wait", func(c *gin.Context) {
		<-c.Request.Context().Done() // a query interrupted by the client leaving
		err := fmt.Errorf("read the latest sales: %w", c.Request.Context().Err())
		if !httpx.ClientGone(c, err) {
			httpx.Error(c, http.StatusInternalServerError, "internal", "internal error")
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/wait", nil))
	if rec.Code != httpx.StatusClientClosed {
		t.Errorf("status = %d, want %d", rec.Code, httpx.StatusClientClosed)
	}
	if strings.Contains(logs.String(), `"level":"ERROR"`) || !strings.Contains(logs.String(), `"status":499`) {
		t.Errorf("logs = %s, want the request at 499 and no Error line", logs.String())
	}

	e.GET("/other", func(c *gin.Context) {
		for _, err := range []error{context.Canceled, errors.New("db down")} { // the client is still there
			if httpx.ClientGone(c, err) {
				t.Errorf("ClientGone(%v) = true with the request's context alive", err)
			}
		}
		c.Status(http.StatusNoContent)
	})
	if code, _ := do(e, "GET", "/other", ""); code != http.StatusNoContent {
		t.Errorf("GET /other = %d, want 204", code)
	}
}
