package httpapi_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"seckill/order-service/internal/intake"
	"seckill/order-service/internal/order"
)

func TestOrderCounts(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 10)
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rows := []struct {
		product, status string
		at              time.Duration // after start
	}{
		{"p1", order.StatusCreated, time.Second},
		{"p1", order.StatusCreated, 2 * time.Second},
		{"p1", order.StatusPaid, 3 * time.Second},
		{"p1", order.StatusShipped, 4 * time.Second},
		{"p1", order.StatusClosed, 5 * time.Second},
		{"p1", order.StatusClosed, -time.Hour}, // an earlier sale
		{"p2", order.StatusClosed, 6 * time.Second},
	}
	for i, r := range rows {
		at := start.Add(r.at)
		o := order.Order{OrderID: "o" + string(rune('a'+i)), UserID: "u", ProductID: r.product, Quantity: 1,
			AmountCents: 1, Status: r.status, CreatedAt: at, UpdatedAt: at}
		if err := f.db.Create(&o).Error; err != nil {
			t.Fatalf("insert %+v: %v", o, err)
		}
	}
	since := url.QueryEscape(start.Format(time.RFC3339Nano))
	tests := []struct {
		name, query string
		want        map[string]any
	}{
		{"every order", "", map[string]any{"products": []any{
			map[string]any{"product_id": "p1", "counts": map[string]any{"created": 2.0, "paid": 1.0, "shipped": 1.0, "closed": 2.0}},
			map[string]any{"product_id": "p2", "counts": map[string]any{"closed": 1.0}},
		}}},
		{"since the sale started", "?since=" + since, map[string]any{"since": start.Format(time.RFC3339), "products": []any{
			map[string]any{"product_id": "p1", "counts": map[string]any{"created": 2.0, "paid": 1.0, "shipped": 1.0, "closed": 1.0}},
			map[string]any{"product_id": "p2", "counts": map[string]any{"closed": 1.0}},
		}}},
		{"one product", "?since=" + since + "&product_id=p2", map[string]any{"since": start.Format(time.RFC3339), "products": []any{
			map[string]any{"product_id": "p2", "counts": map[string]any{"closed": 1.0}},
		}}},
		{"no orders", "?product_id=p3", map[string]any{"products": []any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, http.MethodGet, "/api/v1/order-counts"+tc.query, "")
			if r.status != http.StatusOK {
				t.Fatalf("GET /api/v1/order-counts%s = %d %v, want 200", tc.query, r.status, r.body)
			}
			if diff := cmp.Diff(tc.want, r.body); diff != "" {
				t.Errorf("GET /api/v1/order-counts%s (-want +got):\n%s", tc.query, diff)
			}
		})
	}
	for _, q := range []string{"?since=yesterday", "?product_id=a%20b"} {
		if r := f.do(t, http.MethodGet, "/api/v1/order-counts"+q, ""); r.status != http.StatusBadRequest || r.body["error"] != "invalid_request" {
			t.Errorf("GET /api/v1/order-counts%s = %d %v, want 400 invalid_request", q, r.status, r.body)
		}
	}
}
