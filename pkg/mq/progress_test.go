package mq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"seckill/pkg/testbroker"
)

// TestBehind: a snapshot counts what was stored before it, a group's real
// consumer brings it to 0 by handling (or sending back) those messages, and
// messages stored after the snapshot do not count.
func TestBehind(t *testing.T) {
	srv, cfg := broker(t)
	const topic, group = "PROGRESS", "GID-progress"
	srv.CreateTopic(topic, 2)
	p := newProducer(t, cfg, nil)
	sendN(t, p, topic, 6)

	snap, err := TakeSnapshot(t.Context(), cfg, topic, RetryTopic(group))
	if err != nil {
		t.Fatalf("TakeSnapshot: %v", err)
	}
	var total int64
	for _, q := range snap {
		if q.Topic == topic {
			total += q.Offset
		}
	}
	if total != 6 {
		t.Fatalf("TakeSnapshot(%s) = %+v, want max offsets summing to 6", topic, snap)
	}
	sendN(t, p, topic, 4) // after the snapshot: not waited for
	if got, err := Behind(t.Context(), cfg, group, snap); err != nil || got != 6 {
		t.Fatalf("Behind(never-committed group) = %d, %v; want 6, nil", got, err)
	}

	// One message fails once: the broker gets its retry copy, the offset
	// moves on, and the snapshot counts as passed all the same.
	var failed atomic.Bool
	subscribe(t, cfg, Subscription{Group: group, Topics: []TopicTag{{topic, "*"}}}, func(_ context.Context, m Message) error {
		if m.ReconsumeTimes == 0 && failed.CompareAndSwap(false, true) {
			return errors.New("transient")
		}
		return nil
	}, nil)
	waitFor(t, 30*time.Second, "the group past the snapshot", func() bool {
		n, err := Behind(t.Context(), cfg, group, snap)
		return err == nil && n == 0
	})
	if !failed.Load() {
		t.Errorf("no message failed: the retry case was not exercised")
	}
}

// A topic no broker has holds nothing: it adds no queue and nothing to wait for.
func TestSnapshotOfMissingTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker: skipped under -short")
	}
	srv := testbroker.Start(t, func(o *testbroker.Options) { o.StrictTopics = true })
	cfg := Config{NameServers: []string{srv.NameSrvAddr()}}
	srv.CreateTopic("PRESENT", 2)
	snap, err := TakeSnapshot(t.Context(), cfg, "PRESENT", "ABSENT")
	if err != nil {
		t.Fatalf("TakeSnapshot(PRESENT, ABSENT): %v", err)
	}
	if len(snap) != 2 || snap[0].Topic != "PRESENT" || snap[1].Topic != "PRESENT" {
		t.Errorf("TakeSnapshot(PRESENT, ABSENT) = %+v, want the 2 queues of PRESENT", snap)
	}
	if n, err := Behind(t.Context(), cfg, "GID-none", snap); err != nil || n != 0 {
		t.Errorf("Behind(empty queues) = %d, %v; want 0, nil", n, err)
	}
	bad := Config{NameServers: []string{"127.0.0.1:1"}}
	if _, err := TakeSnapshot(t.Context(), bad, "PRESENT"); err == nil {
		t.Errorf("TakeSnapshot against a closed name server port = nil error, want error")
	}
}
