package testbroker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

func TestFaultRefuseSends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.requireEmbedded(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	p := e.producer(t)
	e.srv.RefuseSends(true)
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, []byte("x"))); err == nil {
		t.Fatal("SendSync with RefuseSends(true) succeeded, want an error")
	}
	e.srv.RefuseSends(false)
	sendSync(t, p, primitive.NewMessage(topicName, []byte("y")))
	if got := len(e.srv.Messages(topicName)); got != 1 {
		t.Errorf("stored %d messages, want only the one sent after RefuseSends(false)", got)
	}
}

func TestFaultDuplicateDelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.requireEmbedded(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	p := e.producer(t)
	e.srv.DuplicateDelivery(3)
	res := sendSync(t, p, primitive.NewMessage(topicName, []byte("dup")))
	e.srv.DuplicateDelivery(1)
	sendSync(t, p, primitive.NewMessage(topicName, []byte("single")))
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 30*time.Second, "4 deliveries", func() bool { return s.len() >= 4 })
	if got := bodySet(s.all()); got["dup"] != 3 || got["single"] != 1 {
		t.Fatalf("deliveries %s, want dup×3 single×1", joinSorted(got))
	}
	for _, m := range s.all() {
		if string(m.Body) == "dup" && m.MsgId != res.MsgID {
			t.Errorf("duplicate MsgId %q, want %q", m.MsgId, res.MsgID)
		}
	}
}

func TestFaultDropOffsetCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.requireEmbedded(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 1)
	p := e.producer(t)
	for i := range 5 {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("m%d", i))))
	}
	e.srv.DropOffsetCommits(group, true)
	s1, c1 := e.subscribe(t, group, topicName, "*")
	waitFor(t, 30*time.Second, "5 messages", func() bool { return s1.len() >= 5 })
	if err := shutdownClient(c1); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// The final commits are oneway frames; the group is empty only once the
	// broker has handled every frame of the closed connection.
	waitFor(t, 30*time.Second, "consumer gone", func() bool { return len(e.srv.Consumers(group)) == 0 })
	if off := e.srv.ConsumerOffset(group, topicName, 0); off != -1 {
		t.Fatalf("ConsumerOffset = %d with commits dropped, want -1", off)
	}
	e.srv.DropOffsetCommits(group, false)
	s2, _ := e.subscribe(t, group, topicName, "*")
	waitFor(t, 30*time.Second, "5 redelivered messages", func() bool { return s2.len() >= 5 })
	waitFor(t, 20*time.Second, "offset committed once commits are kept", func() bool {
		return e.srv.ConsumerOffset(group, topicName, 0) == 5
	})
}

func TestFaultPauseAndLatency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.requireEmbedded(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	p := e.producer(t, producer.WithSendMsgTimeout(300*time.Millisecond), producer.WithRetry(0))
	sendSync(t, p, primitive.NewMessage(topicName, []byte("warm")))

	e.srv.Pause()
	if _, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, []byte("paused"))); err == nil {
		t.Fatal("SendSync while paused succeeded, want a timeout")
	}
	e.srv.Resume()
	sendSync(t, p, primitive.NewMessage(topicName, []byte("resumed")))

	const d = 100 * time.Millisecond
	e.srv.Latency(d)
	start := time.Now()
	sendSync(t, p, primitive.NewMessage(topicName, []byte("slow")))
	if took := time.Since(start); took < d {
		t.Errorf("SendSync with Latency(%v) took %v, want at least %v", d, took, d)
	}
	e.srv.Latency(0)
}
