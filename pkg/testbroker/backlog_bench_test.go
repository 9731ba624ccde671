package testbroker

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// BenchmarkBacklogRSS runs the testbroker command with -data-dir as its own
// process, builds a backlog of TESTBROKER_BACKLOG (default 1,000,000)
// messages with 200-byte bodies in a 4-queue topic for a group that has
// committed offset 0 and does not consume, then drains it with one push
// consumer, and samples the broker process's RSS every 100 ms. It reports
// the largest RSS while building and while draining, the RSS at the end,
// the data dir's largest size and what was delivered (every message
// exactly once, or it fails). TESTBROKER_BIN runs another build of the
// command instead of building this package's (to compare builds). One
// iteration is the whole run:
//
//	go test -run '^$' -bench BacklogRSS -benchtime 1x -timeout 30m ./testbroker/
func BenchmarkBacklogRSS(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("TESTBROKER_BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("TESTBROKER_BACKLOG=%q: want a positive count", v)
		}
		total = n
	}
	bin := os.Getenv("TESTBROKER_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "testbroker")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/testbroker").CombinedOutput(); err != nil {
			b.Fatalf("go build ./cmd/testbroker: %v\n%s", err, out)
		}
	}
	for b.Loop() {
		runBacklog(b, bin, total)
	}
}

const backlogTopic, backlogGroup = "BACKLOG", "GID-backlog"

func runBacklog(b *testing.B, bin string, total int) {
	dataDir := b.TempDir()
	ports := make([]string, 2)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ports[i] = ln.Addr().String()
		ln.Close()
	}
	ns, broker := ports[0], ports[1]
	logFile, err := os.Create(filepath.Join(b.TempDir(), "testbroker.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "-namesrv", ns, "-broker", broker, "-data-dir", dataDir,
		"-topics", backlogTopic+":4", "-log-level", "warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	waitFor(b, 30*time.Second, "the broker's listeners", func() bool {
		c, err := net.DialTimeout("tcp", broker, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// The group has consumed nothing: the broker must keep every message.
	for q := range 4 {
		resp, err := rawCall(broker, &command{Code: 15, Version: 317, Opaque: int32(q + 1), ExtFields: map[string]string{
			"consumerGroup": backlogGroup, "topic": backlogTopic, "queueId": strconv.Itoa(q), "commitOffset": "0"}})
		if err != nil || resp.Code != codeSuccess {
			b.Fatalf("commit offset 0 for queue %d: %v %v", q, err, resp)
		}
	}

	var rss rssSampler
	stopSampling := rss.start(cmd.Process.Pid, dataDir)
	defer stopSampling()
	rss.dir = dataDir

	// Build.
	start := time.Now()
	resent := produceBacklog(b, ns, total)
	built := time.Since(start)
	buildPeak, buildDisk := rss.phase()
	b.Logf("built %d messages in %s (%.0f msg/s): broker RSS peak %.0f MB, now %.0f MB; data dir %.0f MB",
		total, built.Round(time.Millisecond), float64(total)/built.Seconds(), mb(buildPeak), mb(rss.last()), mb(buildDisk))

	// Drain.
	start = time.Now()
	dup, got := drainBacklog(b, ns, total)
	drained := time.Since(start)
	// Let the last commits (every 5 s) reach the broker and free the segments.
	time.Sleep(7 * time.Second)
	drainPeak, _ := rss.phase()
	b.Logf("drained %d messages (%d duplicates) in %s (%.0f msg/s): broker RSS peak %.0f MB, at the end %.0f MB; data dir %.0f MB",
		got, dup, drained.Round(time.Millisecond), float64(total)/drained.Seconds(), mb(drainPeak), mb(rss.last()), mb(dirSize(dataDir)))
	if got != total || dup > resent {
		b.Errorf("delivered %d of %d messages, %d twice (%d sent twice); want each once", got, total, dup, resent)
	}
	b.ReportMetric(mb(buildPeak), "MB-rss-build-peak")
	b.ReportMetric(mb(drainPeak), "MB-rss-drain-peak")
	b.ReportMetric(mb(rss.last()), "MB-rss-end")
	b.ReportMetric(mb(buildDisk), "MB-disk-peak")
	b.ReportMetric(float64(total)/built.Seconds(), "msg/s-build")
	b.ReportMetric(float64(total)/drained.Seconds(), "msg/s-drain")
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }

// produceBacklog sends total messages; it returns how many it sent again
// after a failed send.
func produceBacklog(b *testing.B, ns string, total int) (resent int) {
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{ns}), producer.WithGroupName("PID-backlog"),
		producer.WithInstanceName("backlog-producer"), producer.WithRetry(2))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(); err != nil {
		b.Fatal(err)
	}
	defer shutdownClient(p)
	const batch, senders = 64, 4
	var next atomic.Int64
	var slowest, resends atomic.Int64
	var wg sync.WaitGroup
	for range senders {
		wg.Go(func() {
			msgs := make([]*primitive.Message, 0, batch)
			for {
				from := int(next.Add(batch)) - batch
				if from >= total {
					return
				}
				msgs = msgs[:0]
				for i := from; i < min(from+batch, total); i++ {
					body := make([]byte, 200)
					binary.BigEndian.PutUint64(body, uint64(i))
					msgs = append(msgs, primitive.NewMessage(backlogTopic, body))
				}
				for attempt := 1; ; attempt++ {
					start := time.Now()
					_, err := p.SendSync(context.Background(), msgs...)
					took := time.Since(start)
					for prev := slowest.Load(); int64(took) > prev && !slowest.CompareAndSwap(prev, int64(took)); prev = slowest.Load() {
					}
					if err == nil {
						break
					}
					// Sent again, the batch may be stored twice: drainBacklog
					// allows that many duplicates.
					b.Logf("send messages %d.. (attempt %d, after %s): %v", from, attempt, took, err)
					resends.Add(int64(len(msgs)))
					if attempt == 5 {
						b.Errorf("send messages %d..: gave up after %d attempts", from, attempt)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.Logf("slowest batch send: %s", time.Duration(slowest.Load()).Round(time.Millisecond))
	return int(resends.Load())
}

// drainBacklog consumes the backlog as the group; it returns how many
// messages came twice and how many distinct ones came.
func drainBacklog(b *testing.B, ns string, total int) (dup, got int) {
	seen := make([]atomic.Bool, total)
	var distinct, twice atomic.Int64
	c, err := rocketmq.NewPushConsumer(consumer.WithNameServer([]string{ns}), consumer.WithGroupName(backlogGroup),
		consumer.WithInstance("backlog-consumer"), consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset), consumer.WithPullBatchSize(32),
		consumer.WithConsumeMessageBatchMaxSize(32))
	if err != nil {
		b.Fatal(err)
	}
	err = c.Subscribe(backlogTopic, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
		func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			for _, m := range ms {
				i := int(binary.BigEndian.Uint64(m.Body))
				if i < 0 || i >= total {
					continue
				}
				if seen[i].Swap(true) {
					twice.Add(1)
				} else {
					distinct.Add(1)
				}
			}
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer shutdownClient(c)
	// Wait for all of it, or until nothing more comes for 30 s (a broker
	// that dropped messages never delivers them).
	last, lastAt := int64(-1), time.Now()
	for n := distinct.Load(); n < int64(total) && time.Since(lastAt) < 30*time.Second; n = distinct.Load() {
		if n != last {
			last, lastAt = n, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a duplicate would come here
	return int(twice.Load()), int(distinct.Load())
}

// rssSampler samples a process's RSS and a directory's size.
type rssSampler struct {
	dir                 string
	mu                  sync.Mutex
	peak, diskPeak, now int64
}

func (r *rssSampler) start(pid int, dir string) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			v := processRSS(pid)
			var disk int64
			if i%5 == 0 { // the directory walk is heavier: twice a second
				disk = dirSize(dir)
			}
			r.mu.Lock()
			r.now, r.peak, r.diskPeak = v, max(r.peak, v), max(r.diskPeak, disk)
			r.mu.Unlock()
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// phase returns the peaks since the last call and starts new ones.
func (r *rssSampler) phase() (rssPeak, diskPeak int64) {
	disk := dirSize(r.dir)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.diskPeak = max(r.diskPeak, disk)
	rssPeak, diskPeak = r.peak, r.diskPeak
	r.peak, r.diskPeak = r.now, 0
	return rssPeak, diskPeak
}

func (r *rssSampler) last() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

// processRSS is VmRSS of pid in bytes (0 when unknown).
func processRSS(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return nil
	})
	return n
}
