package testbroker

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// BenchmarkPullToHandlerLatency sends b.N messages at latencyRate msg/s
// (SendSync from a pool of senders) to a 4-queue topic and measures, for
// each, the time from just before SendSync to the start of an unthrottled
// push consumer's handler. It reports p50/p99/max in ms, the SendSync p99
// (part of that) and store-p50/p99: from the broker's store timestamp to
// the handler, the pull path alone (+≤1 ms, the timestamp is in ms), and
// the process's CPU per message (client and broker: steadier than the
// latencies on a loaded machine). Use
// -benchtime 15000x for 3 s of load. Against a real broker when
// ROCKETMQ_NAMESRV is set.
func BenchmarkPullToHandlerLatency(b *testing.B) {
	const latencyRate = 5000
	ns := realNameSrv()
	topicName := "BENCH_LAT"
	if ns == "" {
		srv := Start(b)
		srv.CreateTopic(topicName, 4)
		ns = srv.NameSrvAddr()
	} else {
		(&env{ns: ns}).createTopic(b, topicName, 4)
	}
	group := "bench_lat_cg"
	var (
		mu        sync.Mutex
		latencies []time.Duration
		sends     []time.Duration // SendSync round trips, part of each latency
		// fromStore is the time from the broker's store timestamp to the
		// handler: the pull path alone. The timestamp has millisecond
		// resolution (truncated), so this overstates by up to 1 ms.
		fromStore []time.Duration
		warm      = make(chan struct{}, 1)
		done      = make(chan struct{})
		want      int
	)
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{ns}), consumer.WithGroupName(group),
		consumer.WithInstance("lat"), consumer.WithConsumeFromWhere(consumer.ConsumeFromLastOffset))
	if err != nil {
		b.Fatal(err)
	}
	err = c.Subscribe(topicName, consumer.MessageSelector{}, func(_ context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		now := time.Now()
		for _, m := range ms {
			if len(m.Body) != 8 {
				select {
				case warm <- struct{}{}:
				default:
				}
				continue
			}
			sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Body)))
			mu.Lock()
			latencies = append(latencies, now.Sub(sent))
			fromStore = append(fromStore, now.Sub(time.UnixMilli(m.StoreTimestamp)))
			if len(latencies) == want {
				close(done)
			}
			mu.Unlock()
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdownClient(c) })
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{ns}), producer.WithGroupName("bench_lat_pg"),
		producer.WithInstanceName("lat"))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdownClient(p) })
	// Wait until the consumer owns the queues: warm-up messages arrive.
	deadline := time.Now().Add(60 * time.Second)
	for got := false; !got; {
		if time.Now().After(deadline) {
			b.Fatal("consumer never received a warm-up message")
		}
		for range 8 {
			if _, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, []byte("warm-up"))); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-warm:
			got = true
		case <-time.After(time.Second):
		}
	}
	time.Sleep(time.Second) // let the warm-up backlog drain

	mu.Lock()
	latencies, fromStore, want, done = latencies[:0], fromStore[:0], b.N, make(chan struct{})
	mu.Unlock()
	jobs := make(chan struct{}, 1024)
	var senders sync.WaitGroup
	for range 16 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for range jobs {
				t0 := time.Now()
				body := binary.BigEndian.AppendUint64(nil, uint64(t0.UnixNano()))
				if _, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, body)); err != nil {
					b.Error(err)
				}
				mu.Lock()
				sends = append(sends, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	b.ResetTimer()
	cpu := processCPU()
	start := time.Now()
	for i := range b.N {
		// Pace to latencyRate: message i is due at start + i/rate.
		if d := time.Until(start.Add(time.Duration(i) * time.Second / latencyRate)); d > 0 {
			time.Sleep(d)
		}
		jobs <- struct{}{}
	}
	close(jobs)
	senders.Wait()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		b.Fatalf("received %d of %d messages", len(latencies), b.N)
	}
	b.StopTimer()
	reportCPU(b, cpu, b.N)
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(latencies)
	slices.Sort(sends)
	slices.Sort(fromStore)
	q := func(ds []time.Duration, p float64) float64 {
		return float64(ds[min(int(p*float64(len(ds))), len(ds)-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(q(latencies, 0.50), "p50-ms")
	b.ReportMetric(q(latencies, 0.99), "p99-ms")
	b.ReportMetric(q(latencies, 1), "max-ms")
	b.ReportMetric(q(sends, 0.99), "send-p99-ms")
	b.ReportMetric(q(fromStore, 0.50), "store-p50-ms")
	b.ReportMetric(q(fromStore, 0.99), "store-p99-ms")
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
}
