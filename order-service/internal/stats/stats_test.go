package stats_test

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"seckill/order-service/internal/stats"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

func TestHandle(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := stats.NewCounter(reg)
	tests := []struct {
		name    string
		body    string
		wantErr error
	}{
		{"sold out", `{"version":1,"product_id":"p1","user_id":"u1","reason":"sold_out"}`, nil},
		{"sold out again", `{"version":1,"product_id":"p1","user_id":"u2","reason":"sold_out"}`, nil},
		{"limit", `{"version":1,"product_id":"p1","user_id":"u1","reason":"limit_exceeded"}`, nil},
		{"unknown reason is bounded", `{"version":1,"reason":"x-` + "\u00e9" + `"}`, nil},
		{"malformed", `{`, mq.ErrPermanent},
	}
	for _, tc := range tests {
		err := c.Handle(t.Context(), mq.Message{ID: tc.name, Body: []byte(tc.body)})
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Handle(%s) error = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	want := map[string]float64{"sold_out": 2, "limit_exceeded": 1, "other": 1, "unknown_product": 0}
	for reason, n := range want {
		if got := testenv.Counter(t, reg, "order_rejected_attempts_total", map[string]string{"reason": reason}); got != n {
			t.Errorf("order_rejected_attempts_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
}
