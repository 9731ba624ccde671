package stock

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/testenv"
)

// BenchmarkReserve runs the reservation script from 64 goroutines (the load
// tool's connections) one round trip each (script.Run, the plain way) and
// through the pipeline, on a sale that never sells out. Besides ns/op it
// reports the CPU per reservation of this process and of a local
// redis-server: round trips cost both sides on this kind of machine.
//
//	cd order-service && go test -run '^$' -bench Reserve -benchtime 20000x -count 3 ./internal/stock/
func BenchmarkReserve(b *testing.B) {
	rdb := testenv.Redis(b)
	script := redis.NewScript(reserveLua)
	for _, pipelined := range []bool{false, true} {
		name := "one-by-one"
		if pipelined {
			name = "pipelined"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			product := testenv.Unique(b, "bench")
			stream := testenv.Unique(b, "outbox")
			loaded := testenv.Unique(b, "loaded")
			rdb.Set(ctx, events.StockKey(product), 1<<40, time.Hour)
			rdb.HSet(ctx, events.InfoKey(product), "price", 100, "limit", 0)
			rdb.Set(ctx, loaded, testenv.RunID(b, rdb), time.Hour)
			b.Cleanup(func() { rdb.Del(context.Background(), stream) }) // the outbox entries
			b.Cleanup(func() {
				rdb.Del(context.Background(), events.StockKey(product), events.InfoKey(product), events.UsersKey(product), stream, loaded)
			})
			r := NewReserver(rdb, Options{Stream: stream, TTL: 30 * time.Second, Loaded: loaded}) // order hashes expire in 30 s
			p := r.pipe
			var seq atomic.Int64
			redisBefore, before := testenv.ProcessCPU("redis-server"), testenv.SelfCPU()
			b.SetParallelism(32) // 64 goroutines on 2 CPUs
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					keys, args := r.scriptCall(Request{OrderID: fmt.Sprintf("%s-%d", product, i), UserID: fmt.Sprintf("u%d", i),
						ProductID: product, Quantity: 1, Now: time.Now(), PayWindow: time.Minute})
					var err error
					if pipelined {
						_, err = p.run(ctx, keys, args...)
					} else {
						err = script.Run(ctx, rdb, keys, args...).Err()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			cpu := testenv.SelfCPU() - before
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
			if redisBefore >= 0 {
				b.ReportMetric(float64((testenv.ProcessCPU("redis-server")-redisBefore).Microseconds())/float64(b.N), "redis-cpu-µs/op")
			}
		})
	}
}
