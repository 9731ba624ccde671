package outbox_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"seckill/order-service/internal/outbox"
	"seckill/pkg/testenv"
)

// The gauges follow the stream: entries waiting show as length and as the
// age of the first one; once a sender has handed them to the broker both
// go back to zero.
func TestMonitor(t *testing.T) {
	f := setup(t, 100)
	reg := prometheus.NewRegistry()
	m := outbox.NewMonitor(f.rdb, f.stream, time.Second, slog.New(slog.DiscardHandler), reg)
	gauges := func() (float64, float64) {
		t.Helper()
		if err := m.Sample(t.Context()); err != nil {
			t.Fatalf("Sample() error = %v", err)
		}
		return testenv.Gauge(t, reg, "order_outbox_length", nil), testenv.Gauge(t, reg, "order_outbox_oldest_age_seconds", nil)
	}
	if n, age := gauges(); n != 0 || age != 0 || m.OldestAge() != 0 {
		t.Fatalf("empty outbox: length %v, age %v s, OldestAge %v; want 0, 0, 0", n, age, m.OldestAge())
	}
	f.reserve(t, 3)
	const wait = 300 * time.Millisecond
	time.Sleep(wait)
	n, age := gauges()
	if n != 3 {
		t.Errorf("order_outbox_length = %v, want 3", n)
	}
	if age < wait.Seconds() || age > 30 {
		t.Errorf("order_outbox_oldest_age_seconds = %v, want >= %v", age, wait.Seconds())
	}
	if got := m.OldestAge(); got < wait {
		t.Errorf("OldestAge() = %v, want >= %v", got, wait)
	}
	s := f.newSender(outbox.Options{})
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	entries, err := f.rdb.XRange(t.Context(), f.stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(t.Context(), entries); err != nil {
		t.Fatalf("Send() error = %v", err)
	}
	if n, age := gauges(); n != 0 || age != 0 || m.OldestAge() != 0 {
		t.Errorf("after the send: length %v, age %v s, OldestAge %v; want 0, 0, 0", n, age, m.OldestAge())
	}
}
