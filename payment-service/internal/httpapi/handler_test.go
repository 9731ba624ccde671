package httpapi_test

import (
	"context"
	"encoding/json"
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
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/httpapi"
	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

func newEngine(t testing.TB) (*gin.Engine, *testbroker.Server) {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(t.Output(), nil))
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	now := time.Now().UTC()
	for _, p := range []payment.Payment{
		{OrderID: "pending1", AmountCents: 1999, Status: payment.StatusPending},
		{OrderID: "paid1", AmountCents: 500, Status: payment.StatusPaid},
		{OrderID: "cancelled1", AmountCents: 700, Status: payment.StatusCancelled},
		{OrderID: "refunded1", AmountCents: 900, Status: payment.StatusRefunded},
	} {
		p.CreatedAt, p.UpdatedAt = now, now
		if err := gdb.Create(&p).Error; err != nil {
			t.Fatal(err)
		}
	}
	srv := testbroker.Start(t)
	srv.CreateTopic(events.TopicOrder, 4)
	reg := prometheus.NewRegistry()
	producer, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}},
		testenv.Unique(t, "PID_"), log, mq.NewMetrics(reg, "payment"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	notifier := payment.NewNotifier(producer, log, 3, 10*time.Millisecond)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		notifier.Close(ctx)
	})
	metrics := payment.NewMetrics(reg)
	e := httpx.NewEngine(log, reg, "payment")
	httpapi.New(payment.NewService(gdb, notifier, log, metrics), log).Register(e)
	return e, srv
}

func TestAPI(t *testing.T) {
	t.Parallel()
	e, _ := newEngine(t)
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   map[string]any
	}{
		{"pay pending", "POST", "/api/v1/payments/pending1", 200, map[string]any{"status": "paid"}},
		{"pay again is idempotent", "POST", "/api/v1/payments/pending1", 200, map[string]any{"status": "paid"}},
		{"read after pay", "GET", "/api/v1/payments/pending1", 200,
			map[string]any{"order_id": "pending1", "amount_cents": 1999.0, "status": "paid"}},
		{"pay paid", "POST", "/api/v1/payments/paid1", 200, map[string]any{"status": "paid"}},
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
	e, _ := newEngine(f)
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
