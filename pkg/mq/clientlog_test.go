package mq

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// client-go's errors reach slog at Error, except an error on a connection
// this process closed (a shutdown racing a heartbeat), which is a warning.
func TestClientLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	l := &clientLogger{min: slog.LevelWarn}
	l.log.Store(slog.New(slog.NewJSONHandler(&buf, nil)))

	closed := &net.OpError{Op: "set", Net: "tcp", Err: fmt.Errorf("wrapped: %w", net.ErrClosed)}
	l.Error("conn error, close connection", map[string]any{"underlayError": closed})
	l.Error("send failed", map[string]any{"underlayError": errors.New("broker busy")})
	l.Info("chatty", nil)

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2 (Info is below min):\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], `"level":"WARN"`) || !strings.Contains(lines[0], "use of closed network connection") {
		t.Errorf("closed connection logged as %s, want WARN with the error", lines[0])
	}
	if !strings.Contains(lines[1], `"level":"ERROR"`) {
		t.Errorf("other error logged as %s, want ERROR", lines[1])
	}
}
