package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestNewWriterAddsService(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := NewWriter(&buf, "order", slog.LevelInfo)
	log.Debug("hidden")
	log.Info("hello", "order_id", "o1")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log output %q is not one JSON line: %v", buf.String(), err)
	}
	if line["service"] != "order" || line["msg"] != "hello" || line["order_id"] != "o1" {
		t.Errorf("log line = %v, want service=order msg=hello order_id=o1", line)
	}
}

func TestSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret Secret
		want   string
	}{
		{"set", "hunter2", `"token":"***"`},
		{"empty stays empty", "", `"token":""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			slog.New(slog.NewJSONHandler(&buf, nil)).Info("cfg", "token", tc.secret)
			if !strings.Contains(buf.String(), tc.want) {
				t.Errorf("log line %s, want %s", buf.String(), tc.want)
			}
			if tc.secret != "" && (strings.Contains(buf.String(), string(tc.secret)) || strings.Contains(fmt.Sprint(tc.secret), string(tc.secret))) {
				t.Errorf("secret %q leaked: %s / %s", tc.secret, buf.String(), fmt.Sprint(tc.secret))
			}
		})
	}
}

func TestParseLevel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "WARN": slog.LevelWarn, "error": slog.LevelError, "": slog.LevelInfo, "bogus": slog.LevelInfo} {
		if got := ParseLevel(in); got != want {
			t.Errorf("ParseLevel(%q) = %v, want %v", in, got, want)
		}
	}
}
