package testbroker

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

func TestRetentionBoundsQueueAndMovesLateConsumers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.RetainPerQueue = 10 })
	e.requireEmbedded(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	p := e.producer(t)
	for i := range 25 {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(strconv.Itoa(i))))
	}
	if got := len(e.srv.Messages(topicName)); got != 10 {
		t.Fatalf("retained %d messages, want 10", got)
	}
	if min, max := e.srv.MinOffset(topicName, 0), e.srv.MaxOffset(topicName, 0); min != 15 || max != 25 {
		t.Fatalf("offsets [%d, %d), want [15, 25)", min, max)
	}
	// Offset 0 is gone: the new group's query answers QUERY_NOT_FOUND and the
	// consumer starts from the first retained message.
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 30*time.Second, "10 retained messages", func() bool { return s.len() >= 10 })
	if got := bodySet(s.all()); got["15"] != 1 || got["24"] != 1 || got["14"] != 0 {
		t.Errorf("consumed %s, want 15..24", joinSorted(got))
	}
}

func TestRetentionByBytes(t *testing.T) {
	t.Parallel()
	srv := Start(t, func(o *Options) { o.RetainBytesPerQueue = 4096 })
	srv.CreateTopic("BYTES", 1)
	srv.mu.Lock()
	tp := srv.topics["BYTES"]
	for i := range 100 {
		srv.appendLocked(tp, &message{body: make([]byte, 100), props: map[string]string{"i": fmt.Sprint(i)}})
	}
	q := tp.queues[0]
	n, bytes := len(q.idx), q.bytes
	srv.mu.Unlock()
	if bytes > 4096 || n == 0 || srv.MaxOffset("BYTES", 0) != 100 {
		t.Fatalf("kept %d messages / %d bytes (max offset %d), want ≤ 4096 bytes and offsets up to 100", n, bytes, srv.MaxOffset("BYTES", 0))
	}
}

// TestRetentionFloor: past the bound, retention drops only what every group
// that holds the queue has consumed. Which groups hold it is the table.
func TestRetentionFloor(t *testing.T) {
	t.Parallel()
	const bound = 10
	live := func(model string, topics ...string) *consumerGroup {
		m := &member{model: model, subs: map[string]*subscript{}}
		for _, name := range topics {
			m.subs[name] = &subscript{}
		}
		return &consumerGroup{members: map[string]*member{"c1": m}}
	}
	tests := []struct {
		name    string
		group   *consumerGroup // nil: the group has no live member
		offset  int64          // its committed offset; -1: none
		gone    bool           // no member and no commit for longer than GroupRetention
		wantMin int64          // min offset after 30 appends
	}{
		{"no group: the bound applies", nil, -1, false, 20},
		{"live subscriber at offset 5", live("CLUSTERING", "T"), 5, false, 5},
		{"live subscriber that has committed nothing", live("CLUSTERING", "T"), -1, false, 0},
		{"live subscriber of the retry topic only", live("CLUSTERING", "%RETRY%G"), 5, false, 20},
		{"broadcasting subscriber", live("BROADCASTING", "T"), -1, false, 20},
		{"group without members, recently seen, at offset 5", nil, 5, false, 5},
		{"group without members gone past the group retention", nil, 5, true, 20},
		{"group consumed everything", live("CLUSTERING", "T"), 30, false, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs lockedBuffer
			srv := Start(t, func(o *Options) {
				o.RetainPerQueue = bound
				o.GroupRetention = time.Hour
				o.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			})
			srv.CreateTopic("T", 1)
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if tc.group != nil {
				tc.group.name = "G"
				srv.groups["G"] = tc.group
			}
			if tc.offset >= 0 {
				srv.offsets[offsetKey{"G", "T", 0}] = tc.offset
				srv.groupSeen["G"] = srv.now()
			}
			if tc.gone {
				srv.groupSeen["G"] = srv.now().Add(-2 * time.Hour)
			}
			tp := srv.topics["T"]
			for i := range 30 {
				srv.appendLocked(tp, &message{body: []byte(strconv.Itoa(i)), props: map[string]string{}})
			}
			q := tp.queues[0]
			if q.min != tc.wantMin || q.max() != 30 {
				t.Errorf("after 30 appends the queue holds [%d, %d), want [%d, 30)", q.min, q.max(), tc.wantMin)
			}
			warned := strings.Contains(logs.String(), "groups gone longer than the group retention")
			if warned != tc.gone {
				t.Errorf("warned of dropping a gone group's messages = %v, want %v; log:\n%s", warned, tc.gone, logs.String())
			}
		})
	}
}

// TestBacklogDeliveredOnce: a group stops consuming while ten times the
// queue's bound is produced; once it goes on, it gets every message exactly
// once. In memory the broker refuses sends past the bound (the producer
// backs off and sends again); with a data dir the backlog goes to disk,
// read back through a one-byte cache.
func TestBacklogDeliveredOnce(t *testing.T) {
	t.Parallel()
	const bound, total = 20, 200
	for _, dataDir := range []bool{false, true} {
		t.Run(fmt.Sprintf("data dir %v", dataDir), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, func(o *Options) {
				o.RetainPerQueue = bound
				o.DataDir = "" // also under TESTBROKER_DATA_DIR
				if dataDir {
					o.DataDir, o.SegmentBytes, o.CacheBytesPerQueue = t.TempDir(), 4096, 1
				}
			})
			e.requireEmbedded(t)
			topicName, group := unique(t, "T"), unique(t, "G")
			e.createTopic(t, topicName, 1)
			release := make(chan struct{})
			var once sync.Once
			t.Cleanup(func() { once.Do(func() { close(release) }) })
			got := &sink{}
			c := e.newConsumer(t, group)
			err := c.Subscribe(topicName, consumer.MessageSelector{Type: consumer.TAG, Expression: "*"},
				func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
					<-release // paused: nothing is consumed, nothing committed
					got.add(ms...)
					return consumer.ConsumeSuccess, nil
				})
			if err != nil {
				t.Fatalf("Subscribe: %v", err)
			}
			if err := c.Start(); err != nil {
				t.Fatalf("consumer Start: %v", err)
			}
			t.Cleanup(func() { once.Do(func() { close(release) }); shutdownClient(c) })
			waitFor(t, 30*time.Second, "the group's heartbeat", func() bool { return len(e.srv.Consumers(group)) == 1 })

			p := e.producer(t, producer.WithRetry(0))
			refused := 0
			for i := 0; i < total; {
				_, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, []byte(strconv.Itoa(i))))
				if err == nil {
					i++
					continue
				}
				if !strings.Contains(err.Error(), "CODE: 14") {
					t.Fatalf("send %d: %v, want success or 14 SERVICE_NOT_AVAILABLE", i, err)
				}
				refused++
				once.Do(func() { close(release) }) // the store is full: let the group go on
				time.Sleep(10 * time.Millisecond)  // and back off
			}
			if dataDir && refused > 0 {
				t.Errorf("%d sends refused with a data dir, want 0 (the backlog goes to disk)", refused)
			}
			if !dataDir && refused == 0 {
				t.Errorf("no send refused in memory while the group was paused past the bound")
			}
			if dataDir {
				if n := e.srv.MaxOffset(topicName, 0) - e.srv.MinOffset(topicName, 0); n != total {
					t.Errorf("queue holds %d messages with the group paused, want all %d", n, total)
				}
				if segs := countSegments(t, e.srv.opts.DataDir); segs < 2 {
					t.Errorf("%d segment files for %d messages of 4 KiB segments, want several", segs, total)
				}
			}
			once.Do(func() { close(release) })
			waitFor(t, 60*time.Second, fmt.Sprintf("%d messages", total), func() bool { return got.len() >= total })
			time.Sleep(200 * time.Millisecond) // a duplicate would arrive here
			counts := bodySet(got.all())
			for i := range total {
				if n := counts[strconv.Itoa(i)]; n != 1 {
					t.Errorf("message %d delivered %d times, want once", i, n)
				}
			}
			t.Logf("%d sends refused while the group was paused", refused)
		})
	}
}

func countSegments(t *testing.T, dir string) int {
	t.Helper()
	starts, err := segmentFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(starts)
}
