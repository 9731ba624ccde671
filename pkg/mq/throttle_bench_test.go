package mq

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"seckill/pkg/testbroker"
)

// BenchmarkThrottledDrain measures the drain rate of a group at Rate 200
// with a backlog larger than it can drain in the window (the issue's
// CONSUME_RATE default): it reports msg/s over 10 s after a 1 s warm-up.
// Run: go test -run '^$' -bench ThrottledDrain -benchtime 1x ./mq/
func BenchmarkThrottledDrain(b *testing.B) {
	const rate, window = 200.0, 10 * time.Second
	for range b.N {
		srv := testbroker.Start(b)
		cfg := Config{NameServers: []string{srv.NameSrvAddr()}}
		srv.CreateTopic("DRAIN", 4)
		p, err := NewProducer(context.Background(), cfg, "PID-bench", quietLog(), nil)
		if err != nil {
			b.Fatal(err)
		}
		var batch []Outgoing
		for i := range 4000 {
			batch = append(batch, Outgoing{Topic: "DRAIN", Body: fmt.Appendf(nil, "%d", i)})
		}
		for i := 0; i < len(batch); i += 200 {
			if err := p.SendBatch(context.Background(), batch[i:i+200]); err != nil {
				b.Fatal(err)
			}
		}
		p.Close()
		var n atomic.Int64
		c, err := Subscribe(context.Background(), cfg, Subscription{Group: "GID-drain", Topics: []TopicTag{{"DRAIN", "*"}}, Rate: rate},
			func(ctx context.Context, m Message) error { n.Add(1); return nil }, quietLog(), nil)
		if err != nil {
			b.Fatal(err)
		}
		for n.Load() == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		start, from := time.Now(), n.Load()
		time.Sleep(window)
		got := float64(n.Load()-from) / time.Since(start).Seconds()
		c.Close()
		b.ReportMetric(got, "msg/s")
		b.ReportMetric(100*(got-rate)/rate, "%off")
	}
}
