package testbroker

import (
	"context"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// benchProducer starts a broker (unless ROCKETMQ_NAMESRV is set) and a
// producer. TESTBROKER_BENCH_DATADIR=1 gives the embedded broker a data dir.
func benchProducer(b *testing.B, topicName string) rocketmq.Producer {
	b.Helper()
	ns := realNameSrv()
	if ns == "" {
		srv := Start(b, func(o *Options) {
			if os.Getenv("TESTBROKER_BENCH_DATADIR") == "1" {
				o.DataDir = b.TempDir()
			}
		})
		srv.CreateTopic(topicName, 4)
		ns = srv.NameSrvAddr()
	}
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{ns}), producer.WithGroupName("bench_pg"),
		producer.WithInstanceName(topicName))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { shutdownClient(p) })
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, []byte("warm"))); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkSendBatch64 sends batches of 64 messages with 200-byte bodies;
// msg/s is the figure to compare.
func BenchmarkSendBatch64(b *testing.B) {
	p := benchProducer(b, "BENCH_BATCH")
	body := make([]byte, 200)
	batch := make([]*primitive.Message, 64)
	for i := range batch {
		batch[i] = primitive.NewMessage("BENCH_BATCH", body)
	}
	cpu := processCPU()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.SendSync(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "msg/s")
	reportCPU(b, cpu, b.N*len(batch))
}

// BenchmarkSendSync64 runs 64 concurrent single SendSync callers.
func BenchmarkSendSync64(b *testing.B) {
	p := benchProducer(b, "BENCH_SYNC")
	body := make([]byte, 200)
	cpu := processCPU()
	b.ResetTimer()
	var wg sync.WaitGroup
	per := b.N/64 + 1
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if _, err := p.SendSync(context.Background(), primitive.NewMessage("BENCH_SYNC", body)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(per*64)/b.Elapsed().Seconds(), "msg/s")
	reportCPU(b, cpu, per*64)
}

// processCPU is the user+system CPU time this process has used. Against the
// embedded broker it covers client and broker, so it measures the cost per
// message even on a loaded machine where msg/s is noisy.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, since time.Duration, msgs int) {
	b.ReportMetric(float64(processCPU()-since)/float64(time.Microsecond)/float64(msgs), "cpu-µs/msg")
}
