package payment_test

import (
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkPay: buyers paying at once right after their 202 (the
// reservation is all payment-service has of each order), 64 at a time, as
// at the peak of a sale. b.N orders, each paid once.
func BenchmarkPay(b *testing.B) {
	e := newEnv(b)
	evs := make([]string, b.N)
	for i := range b.N {
		evs[i] = e.reserve(b, i, time.Hour).OrderID
	}
	var next atomic.Int64
	b.SetParallelism(32) // × GOMAXPROCS (2) = 64 buyers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			if _, err := e.svc.Pay(b.Context(), evs[i]); err != nil {
				b.Errorf("Pay(%s) error = %v", evs[i], err)
			}
		}
	})
}
