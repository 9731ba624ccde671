package mq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A throttled concurrent group hands messages that pass the throttle together
// to its BatchHandler; a failed batch, ErrNoBatch and a panicking batch send
// their messages to the Handler one by one, and every message is handled (and
// acked) exactly once either way.
func TestBatchHandler(t *testing.T) {
	srv, cfg := broker(t)
	const topic, group, total = "BATCHED", "GID-batched", 300
	srv.CreateTopic(topic, 4)
	p := newProducer(t, cfg, nil)
	var out []Outgoing
	for i := range total {
		// Every 50th message makes its batch fail, every 70th asks for no
		// batch, every 90th makes the batch handler panic (several of each:
		// a message that happens to be delivered alone never meets the
		// batch handler).
		body := fmt.Sprintf("m%03d", i)
		switch {
		case i%90 == 41:
			body += " panic"
		case i%50 == 7:
			body += " fail"
		case i%70 == 3:
			body += " nobatch"
		}
		tag := "created" // every third message has another tag: batches never mix tags
		if i%3 == 2 {
			tag = "closed"
		}
		out = append(out, Outgoing{Topic: topic, Tag: tag, Keys: []string{fmt.Sprintf("k%03d", i)}, Body: []byte(body)})
	}
	if err := p.SendBatch(t.Context(), out); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	var (
		mu                       sync.Mutex
		handled                  = map[string]int{} // key → times handled
		sizes                    []int
		mixed                    []string // tags of batches that mixed them
		failed, nobatch, panicks int
	)
	batchFn := func(ctx context.Context, ms []Message) error {
		for _, m := range ms[1:] {
			if m.Tag != ms[0].Tag {
				mu.Lock()
				mixed = append(mixed, ms[0].Tag+"+"+m.Tag)
				mu.Unlock()
			}
		}
		for _, m := range ms {
			switch {
			case strings.HasSuffix(string(m.Body), " panic"):
				mu.Lock()
				panicks++
				mu.Unlock()
				panic("batch handler panic (test)")
			case strings.HasSuffix(string(m.Body), " fail"):
				mu.Lock()
				failed++
				mu.Unlock()
				return errors.New("batch refused (test)")
			case strings.HasSuffix(string(m.Body), " nobatch"):
				mu.Lock()
				nobatch++
				mu.Unlock()
				return ErrNoBatch
			}
		}
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(ms))
		for _, m := range ms {
			handled[m.Keys]++
		}
		return nil
	}
	single := func(ctx context.Context, m Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled[m.Keys]++
		return nil
	}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "test")
	subscribe(t, cfg, Subscription{Group: group, Topics: []TopicTag{{topic, ""}}, Rate: 200, Batch: batchFn}, single, m)
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(handled) }
	waitFor(t, 30*time.Second, "every message handled", func() bool { return count() == total })
	time.Sleep(300 * time.Millisecond) // a redelivery would show up now

	mu.Lock()
	defer mu.Unlock()
	for k, n := range handled {
		if n != 1 {
			t.Errorf("message %s handled %d times, want once", k, n)
		}
	}
	inBatches := 0
	for _, n := range sizes {
		inBatches += n
	}
	t.Logf("%d batches (sizes %v), %d messages in batches; %d failed, %d no-batch, %d panicked batches",
		len(sizes), sizes, inBatches, failed, nobatch, panicks)
	if len(mixed) > 0 {
		t.Errorf("batches mixed tags: %v", mixed)
	}
	if len(sizes) == 0 || slices.Max(sizes) < 2 {
		t.Errorf("batch sizes %v: want batches of more than one message", sizes)
	}
	if inBatches < total/2 {
		t.Errorf("%d of %d messages went through batches, want at least half", inBatches, total)
	}
	if failed == 0 || nobatch == 0 || panicks == 0 {
		t.Errorf("failed %d, no-batch %d, panicked %d batches: want each path taken", failed, nobatch, panicks)
	}
	if ok := testutil.ToFloat64(m.consumed.WithLabelValues(group, topic, resultOK)); ok != total {
		t.Errorf("consumed{result=ok} = %v, want %d", ok, total)
	}
	batched := testutil.ToFloat64(m.batched.WithLabelValues(group, "created", "batched")) +
		testutil.ToFloat64(m.batched.WithLabelValues(group, "closed", "batched"))
	fallback := testutil.ToFloat64(m.batched.WithLabelValues(group, "created", "fallback")) +
		testutil.ToFloat64(m.batched.WithLabelValues(group, "closed", "fallback"))
	if batched != float64(inBatches) {
		t.Errorf("messages_batched_total{result=batched} = %v, want the %d messages handled in batches", batched, inBatches)
	}
	if fallback < float64(failed+panicks) {
		t.Errorf("messages_batched_total{result=fallback} = %v, want at least one per failed or panicked batch (%d)", fallback, failed+panicks)
	}
}
