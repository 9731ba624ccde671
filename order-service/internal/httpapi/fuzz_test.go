package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"seckill/order-service/internal/intake"
)

// FuzzCreateOrder: whatever the body and Idempotency-Key, POST /api/v1/orders
// answers a JSON 2xx/4xx, never a 5xx or a panic.
func FuzzCreateOrder(f *testing.F) {
	for _, seed := range []string{
		`{"user_id":"u1","product_id":"p1","quantity":1}`,
		`{"user_id":"u1","product_id":"p1","quantity":-1}`,
		`{"user_id":"u1","product_id":"p1","quantity":1e400}`,
		`{"user_id":"\xff\xfe","product_id":"p1","quantity":1}`,
		`{"user_id":null}`, `[]`, `""`, `{`, `{}{}`, "\x00",
		`{"user_id":"u","product_id":"p","quantity":1,"user_id":"v"}`,
	} {
		f.Add(seed, "")
		f.Add(seed, "key-1")
	}
	fx := setup(f, intake.ModeOutbox, 1_000_000)
	f.Fuzz(func(t *testing.T, body, idem string) {
		req := httptest.NewRequest(http.MethodPost, "/api/v1/orders", strings.NewReader(body))
		if idem != "" && !strings.ContainsAny(idem, "\r\n\x00") {
			req.Header.Set("Idempotency-Key", idem)
		}
		w := httptest.NewRecorder()
		fx.h.ServeHTTP(w, req)
		if w.Code >= 500 || !strings.HasPrefix(strings.TrimSpace(w.Body.String()), "{") {
			t.Fatalf("POST %q = %d %s, want a JSON 4xx or 202", body, w.Code, w.Body.String())
		}
	})
}
