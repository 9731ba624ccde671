// Package logging builds the JSON slog logger every service writes to stdout
// and the Secret type that keeps credentials out of log lines.
package logging

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// New returns a JSON logger writing to stdout; every line carries "service".
// LOG_LEVEL (debug, info, warn, error) sets the minimum level, info by default;
// it is read here because the logger exists before any config is loaded.
func New(service string) *slog.Logger {
	return NewWriter(os.Stdout, service, ParseLevel(os.Getenv("LOG_LEVEL")))
}

// NewWriter is New with an explicit destination and level (tests, tools).
func NewWriter(w io.Writer, service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("service", service)
}

// ParseLevel maps a level name to a slog.Level; unknown or empty names are Info.
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Secret is a string that logs as "***" (or "" when empty, so a missing
// credential is still visible in the startup config line).
type Secret string

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value {
	if s == "" {
		return slog.StringValue("")
	}
	return slog.StringValue("***")
}

// String masks the value for fmt as well, so %v never leaks it.
func (s Secret) String() string { return s.LogValue().String() }
