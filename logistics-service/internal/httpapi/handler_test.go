package httpapi_test

import (
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
	"seckill/pkg/httpx"
	"seckill/pkg/testenv"

	"seckill/logistics-service/internal/httpapi"
	"seckill/logistics-service/internal/shipment"
	"seckill/logistics-service/migrations"
)

func newEngine(t testing.TB) *gin.Engine {
	t.Helper()
	log := slog.New(slog.NewJSONHandler(t.Output(), nil))
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	created := time.Date(2026, 11, 25, 10, 30, 0, 123456000, time.UTC)
	s := shipment.Shipment{OrderID: "o1", ShipmentID: "s1", Status: shipment.StatusCreated, CreatedAt: created}
	if err := gdb.Create(&s).Error; err != nil {
		t.Fatal(err)
	}
	e := httpx.NewEngine(log, prometheus.NewRegistry(), "logistics")
	httpapi.New(gdb, log).Register(e)
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
		{"shipped order", "GET", "/api/v1/shipments/o1", 200,
			map[string]any{"order_id": "o1", "status": "created", "created_at": "2026-11-25T10:30:00.123456Z"}},
		{"unknown order", "GET", "/api/v1/shipments/o2", 404, map[string]any{"error": "not_found"}},
		{"bad id", "GET", "/api/v1/shipments/o%201", 400, map[string]any{"error": "invalid_request"}},
		{"over-long id", "GET", "/api/v1/shipments/" + strings.Repeat("7", 65), 400, map[string]any{"error": "invalid_request"}},
		{"invalid utf-8 id", "GET", "/api/v1/shipments/%c3%28", 400, map[string]any{"error": "invalid_request"}},
		{"wrong method", "POST", "/api/v1/shipments/o1", 405, map[string]any{"error": "method_not_allowed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
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
	for _, seed := range []string{"o1", "", "/", "a/b", "%00", "\xc3\x28", strings.Repeat("7", 65), "o1' OR '1'='1"} {
		f.Add(seed)
	}
	e := newEngine(f)
	f.Fuzz(func(t *testing.T, id string) {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "GET", "/api/v1/shipments/"+url.PathEscape(id), nil))
		if rec.Code >= 500 {
			t.Errorf("GET order_id %q status = %d, want < 500 (body %s)", id, rec.Code, rec.Body)
		}
		if rec.Code >= 300 && rec.Code < 400 {
			return // the engine's path cleaning redirects (e.g. "/" as the ID)
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Errorf("GET order_id %q: status %d, body %q is not JSON: %v", id, rec.Code, rec.Body, err)
		}
	})
}
