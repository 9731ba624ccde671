package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"seckill/pkg/mq"
	"seckill/pkg/testbroker"

	"github.com/google/go-cmp/cmp"
)

func TestParseTopics(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]int
		wantErr bool
	}{
		{"", map[string]int{}, false},
		{"ORDER:4,SOLDOUT:1", map[string]int{"ORDER": 4, "SOLDOUT": 1}, false},
		{"A, B:2", map[string]int{"A": 4, "B": 2}, false},
		{"A:x", map[string]int{}, true},
		{"A:0", map[string]int{}, true},
	}
	for _, tc := range tests {
		got, err := parseTopics(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseTopics(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("parseTopics(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestAdminFaults(t *testing.T) {
	srv := testbroker.Start(t)
	srv.CreateTopic("ADMIN_T", 1)
	api := httptest.NewServer(adminHandler(srv, slog.New(slog.DiscardHandler)))
	t.Cleanup(api.Close)

	tests := []struct {
		name, method, path, body string
		status                   int
	}{
		{"unknown field", "POST", "/faults", `{"duplicat":3}`, 400},
		{"negative duplicate", "POST", "/faults", `{"duplicate":-1}`, 400},
		{"latency out of range", "POST", "/faults", `{"latency_ms":600000}`, 400},
		{"lag without group", "GET", "/lag", "", 400},
		{"dlq without group", "GET", "/dlq", "", 400},
		{"duplicate 3", "POST", "/faults", `{"duplicate":3,"drop_commits":{"G1":true}}`, 200},
	}
	for _, tc := range tests {
		if got := call(t, api.URL, tc.method, tc.path, tc.body, nil); got != tc.status {
			t.Errorf("%s: %s %s %s = %d, want %d", tc.name, tc.method, tc.path, tc.body, got, tc.status)
		}
	}

	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "admin-test",
		slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if _, err := p.SendSync(t.Context(), mq.Outgoing{Topic: "ADMIN_T", Tag: "x", Body: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Messages("ADMIN_T")); got != 3 {
		t.Errorf("after POST /faults {\"duplicate\":3} one send stored %d messages, want 3", got)
	}
	if got := call(t, api.URL, "POST", "/faults", `{"duplicate":1}`, nil); got != 200 {
		t.Fatalf("POST /faults duplicate 1 = %d", got)
	}
	if _, err := p.SendSync(t.Context(), mq.Outgoing{Topic: "ADMIN_T", Tag: "x", Body: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Messages("ADMIN_T")); got != 4 {
		t.Errorf("after duplicate 1 a send stored %d messages in all, want 4", got)
	}
	var lag struct {
		Group string `json:"group"`
		Lag   int64  `json:"lag"`
	}
	if got := call(t, api.URL, "GET", "/lag?group=G1", "", &lag); got != 200 || lag.Group != "G1" {
		t.Errorf("GET /lag?group=G1 = %d %+v", got, lag)
	}
	var dlq struct {
		Count    int   `json:"count"`
		Messages []any `json:"messages"`
	}
	if got := call(t, api.URL, "GET", "/dlq?group=G1", "", &dlq); got != 200 || dlq.Count != 0 || dlq.Messages == nil {
		t.Errorf("GET /dlq?group=G1 = %d %+v, want 200 count 0 messages []", got, dlq)
	}
	if got := call(t, api.URL, "POST", "/faults", `{"refuse_sends":true}`, nil); got != 200 {
		t.Fatalf("POST /faults refuse_sends = %d", got)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := p.SendSync(ctx, mq.Outgoing{Topic: "ADMIN_T", Tag: "x", Body: []byte("three")}); err == nil {
		t.Error("send with refuse_sends on succeeded, want an error")
	}
}

// call sends one request and decodes a 200 answer into out (when not nil).
func call(t *testing.T, base, method, path, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, path, err)
		}
	}
	return resp.StatusCode
}
