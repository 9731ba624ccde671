package testenv

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fatalTB records Fatalf and stops the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	ctx context.Context
	msg string
}

func (f *fatalTB) Helper()                  {}
func (f *fatalTB) Context() context.Context { return f.ctx }
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls body with a fatalTB in its own goroutine and returns what it failed with.
func run(ctx context.Context, body func(testing.TB)) string {
	f := &fatalTB{ctx: ctx}
	done := make(chan struct{})
	go func() {
		defer close(done)
		body(f)
	}()
	<-done
	return f.msg
}

func TestPoll(t *testing.T) {
	t.Parallel()
	calls := 0
	if msg := run(t.Context(), func(tb testing.TB) {
		Eventually(tb, time.Minute, "three calls", func() bool { calls++; return calls == 3 })
	}); msg != "" || calls != 3 {
		t.Errorf("Eventually(holds on call 3) failed %q after %d calls, want no failure after 3", msg, calls)
	}
	msg := run(t.Context(), func(tb testing.TB) {
		Poll(tb, 50*time.Millisecond, "the impossible", func() error { return errors.New("still 2 rows") })
	})
	if !strings.Contains(msg, "the impossible") || !strings.Contains(msg, "still 2 rows") {
		t.Errorf("Poll(never nil) failed with %q, want it to name what it waited for and the last error", msg)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if msg := run(ctx, func(tb testing.TB) {
		Eventually(tb, time.Hour, "a cancelled test", func() bool { return false })
	}); !strings.Contains(msg, "a cancelled test") {
		t.Errorf("Eventually(test context ended) failed with %q, want a failure naming what it waited for", msg)
	}
}

func TestCounter(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "t_messages_total"}, []string{"group", "result"})
	reg.MustRegister(c)
	c.WithLabelValues("g1", "ok").Add(3)
	c.WithLabelValues("g1", "retry").Add(1)
	c.WithLabelValues("g2", "ok").Add(5)
	tests := []struct {
		name  string
		match map[string]string
		want  float64
	}{
		{"every sample", nil, 9},
		{"one label", map[string]string{"result": "ok"}, 8},
		{"two labels", map[string]string{"group": "g1", "result": "ok"}, 3},
		{"no sample", map[string]string{"group": "g3"}, 0},
	}
	for _, tc := range tests {
		if got := Counter(t, reg, "t_messages_total", tc.match); got != tc.want {
			t.Errorf("%s: Counter(t_messages_total, %v) = %v, want %v", tc.name, tc.match, got, tc.want)
		}
	}
	if got := Counter(t, reg, "t_absent_total", nil); got != 0 {
		t.Errorf("Counter(t_absent_total) = %v, want 0", got)
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
		t.Errorf("FreeAddr() = %q, want 127.0.0.1 and a port", addr)
	}
}
