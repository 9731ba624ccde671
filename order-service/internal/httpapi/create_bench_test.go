package httpapi_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"seckill/order-service/internal/intake"
)

// BenchmarkCreate is POST /api/v1/orders through the whole engine
// (middleware, handler, pipelined reservation in the real Redis, outbox
// entry), in process: allocations and CPU of the request path without
// the network.
//
//	cd order-service && go test -run '^$' -bench Create -benchmem -benchtime 20000x ./internal/httpapi/
func BenchmarkCreate(b *testing.B) {
	f := setup(b, intake.ModeOutbox, 1<<30)
	var seq atomic.Int64
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := seq.Add(1)
			req := httptest.NewRequest(http.MethodPost, "/api/v1/orders",
				strings.NewReader(fmt.Sprintf(`{"user_id":"%s-b%d","product_id":%q,"quantity":1}`, f.product, i, f.product)))
			req.Header.Set("Content-Type", "application/json")
			// Users (and so idempotency keys) of this run only: a key left
			// in Redis by an earlier run would replay its order.
			req.Header.Set("Idempotency-Key", fmt.Sprintf("k%d", i))
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, req)
			if w.Code != http.StatusAccepted {
				b.Fatalf("POST = %d %s", w.Code, w.Body)
			}
		}
	})
}
