package mq

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNewMetricsNilRegisterer(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil, "test") // must not panic
	m.consumedInc("g", "T", resultOK)
	m.setLag("g", 3)
	if v := testutil.ToFloat64(m.consumed.WithLabelValues("g", "T", resultOK)); v != 1 {
		t.Errorf("consumed_total after one message = %v, want 1", v)
	}
}
