package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/outbox"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/httpapi"
	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

type nopRelay struct{}

func (nopRelay) Notify() {}

// newEngine serves the API on a fresh database holding payments pending1
// (deadline in an hour), late1 (deadline passed), paid1, cancelled1 and
// refunded1, and on Redis holding the reservation of reserved1 (accepted,
// not yet known to the database).
func newEngine(t testing.TB) *gin.Engine {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(t.Output(), nil))
	gdb := testenv.MariaDB(t, dedup.Migrations, outbox.Migrations, migrations.FS)
	now := time.Now().UTC()
	hour, ago := now.Add(time.Hour), now.Add(-time.Second)
	for _, p := range []payment.Payment{
		{OrderID: "pending1", AmountCents: 1999, Status: payment.StatusPending, PayDeadline: &hour},
		{OrderID: "late1", AmountCents: 1999, Status: payment.StatusPending, PayDeadline: &ago},
		{OrderID: "paid1", AmountCents: 500, Status: payment.StatusPaid, PayDeadline: &hour},
		{OrderID: "cancelled1", AmountCents: 700, Status: payment.StatusCancelled},
		{OrderID: "refunded1", AmountCents: 900, Status: payment.StatusRefunded},
	} {
		p.CreatedAt, p.UpdatedAt = now, now
		if err := gdb.Create(&p).Error; err != nil {
			t.Fatal(err)
		}
	}
	rdb := testenv.Redis(t)
	key := events.OrderKey("reserved1")
	rdb.HSet(t.Context(), key, "order_id", "reserved1", "user_id", "u1", "product_id", "p1", "quantity", 1,
		"amount_cents", 300, "created_at", now.UnixMilli(), "pay_deadline", hour.UnixMilli())
	t.Cleanup(func() { rdb.Del(context.Background(), key) })
	reg := prometheus.NewRegistry()
	metrics := payment.NewMetrics(reg)
	store := payment.NewStore(gdb, nopRelay{})
	e := httpx.NewEngine(log, reg, "payment")
	httpapi.New(payment.NewService(store, payment.NewReservations(rdb), log, metrics), log).Register(e)
	return e
}

func TestAPI(t *testing.T) {
	t.Parallel()
	e := newEngine(t)
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   map[string]any
	}{
		{"read reserved, not yet recorded", "GET", "/api/v1/payments/reserved1", 200,
			map[string]any{"order_id": "reserved1", "amount_cents": 300.0, "status": "pending"}},
		{"pay reserved, not yet recorded", "POST", "/api/v1/payments/reserved1", 200, map[string]any{"status": "paid"}},
		{"pay pending", "POST", "/api/v1/payments/pending1", 200, map[string]any{"status": "paid"}},
		{"pay again is idempotent", "POST", "/api/v1/payments/pending1", 200, map[string]any{"status": "paid"}},
		{"read after pay", "GET", "/api/v1/payments/pending1", 200,
			map[string]any{"order_id": "pending1", "amount_cents": 1999.0, "status": "paid"}},
		{"pay paid", "POST", "/api/v1/payments/paid1", 200, map[string]any{"status": "paid"}},
		{"pay after the deadline", "POST", "/api/v1/payments/late1", 409, map[string]any{"error": "order_closed"}},
		{"read late", "GET", "/api/v1/payments/late1", 200,
			map[string]any{"order_id": "late1", "amount_cents": 1999.0, "status": "expired"}},
		{"pay cancelled", "POST", "/api/v1/payments/cancelled1", 409, map[string]any{"error": "order_closed"}},
		{"pay refunded", "POST", "/api/v1/payments/refunded1", 409, map[string]any{"error": "order_closed"}},
		{"read cancelled", "GET", "/api/v1/payments/cancelled1", 200,
			map[string]any{"order_id": "cancelled1", "amount_cents": 700.0, "status": "cancelled"}},
		{"read refunded", "GET", "/api/v1/payments/refunded1", 200,
			map[string]any{"order_id": "refunded1", "amount_cents": 900.0, "status": "refunded"}},
		{"pay unknown", "POST", "/api/v1/payments/nope", 404, map[string]any{"error": "not_found"}},
		{"read unknown", "GET", "/api/v1/payments/nope", 404, map[string]any{"error": "not_found"}},
		{"pay bad id", "POST", "/api/v1/payments/bad%21id", 400, map[string]any{"error": "invalid_request"}},
		{"read over-long id", "GET", "/api/v1/payments/" + strings.Repeat("x", 65), 400, map[string]any{"error": "invalid_request"}},
		{"read invalid utf-8 id", "GET", "/api/v1/payments/%ff%fe", 400, map[string]any{"error": "invalid_request"}},
		{"wrong method", "DELETE", "/api/v1/payments/pending1", 405, map[string]any{"error": "method_not_allowed"}},
	}
	for _, tc := range tests { // in order: later cases see earlier payments
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), tc.method, tc.path, nil))
			if rec.Code != tc.wantStatus {
				t.Errorf("%s %s status = %d, want %d (body %s)", tc.method, tc.path, rec.Code, tc.wantStatus, rec.Body)
			}
			var got map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatalf("%s %s body %q: %v", tc.method, tc.path, rec.Body, err)
			}
			if _, ok := tc.wantBody["error"]; ok {
				delete(got, "message") // free text
			}
			// Every answer about an order with a pay window shows its deadline.
			if st := tc.wantBody["status"]; rec.Code == 200 && (st == "pending" || st == "paid" || st == "expired") && got["pay_deadline"] == nil {
				t.Errorf("%s %s: no pay_deadline in %v", tc.method, tc.path, got)
			}
			// Times are checked for their form; the values are the clock's.
			for _, k := range []string{"pay_deadline", "paid_at"} {
				if v, ok := got[k]; ok {
					if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(v)); err != nil {
						t.Errorf("%s %s %s = %v, want an RFC 3339 time", tc.method, tc.path, k, v)
					}
					delete(got, k)
				}
			}
			if diff := cmp.Diff(tc.wantBody, got); diff != "" {
				t.Errorf("%s %s body (-want +got):\n%s", tc.method, tc.path, diff)
			}
		})
	}
}

// No order_id, however odd, makes the API fail with a 5xx or panic.
func FuzzOrderID(f *testing.F) {
	for _, seed := range []string{"o1", "pending1", "", "a/b", "%00", "\xff\xfe", strings.Repeat("9", 65), "o1'; DROP TABLE payments; --"} {
		f.Add(seed)
	}
	e := newEngine(f)
	f.Fuzz(func(t *testing.T, id string) {
		for _, method := range []string{"GET", "POST"} {
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), method, "/api/v1/payments/"+url.PathEscape(id), nil))
			if rec.Code >= 500 {
				t.Errorf("%s order_id %q status = %d, want < 500 (body %s)", method, id, rec.Code, rec.Body)
			}
			if rec.Code >= 300 && rec.Code < 400 {
				continue // the engine's path cleaning redirects (e.g. "/" as the ID)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Errorf("%s order_id %q: status %d, body %q is not JSON: %v", method, id, rec.Code, rec.Body, err)
			}
		}
	})
}
