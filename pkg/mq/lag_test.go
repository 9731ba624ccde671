package mq

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"seckill/pkg/testbroker"
)

func sendN(t *testing.T, p *Producer, topic string, n int) {
	t.Helper()
	for i := range n {
		if _, err := p.SendSync(t.Context(), Outgoing{Topic: topic, Body: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatalf("SendSync(%s): %v", topic, err)
		}
	}
}

// TestGroupLag checks the broker-side lag of groups that never committed,
// including a queue whose oldest messages the broker already dropped.
func TestGroupLag(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker: skipped under -short")
	}
	srv := testbroker.Start(t, func(o *testbroker.Options) { o.RetainPerQueue = 5 })
	cfg := Config{NameServers: []string{srv.NameSrvAddr()}}
	srv.CreateTopic("LAG_RETAIN", 1)
	srv.CreateTopic("LAG_TWO", 2)
	p := newProducer(t, cfg, nil)
	sendN(t, p, "LAG_RETAIN", 8) // offsets 3..7 retained
	sendN(t, p, "LAG_TWO", 6)
	if min := srv.MinOffset("LAG_RETAIN", 0); min != 3 {
		t.Fatalf("testbroker MinOffset(LAG_RETAIN, 0) = %d, want 3", min)
	}
	tests := []struct {
		name   string
		topics []string
		want   int64
	}{
		{"oldest retained counts, not offset 0", []string{"LAG_RETAIN"}, 5},
		{"every queue", []string{"LAG_TWO"}, 6},
		{"every topic", []string{"LAG_RETAIN", "LAG_TWO"}, 11},
		{"a missing topic (a retry topic before the first retry) has none", []string{"LAG_TWO", RetryTopic("GID-lag-new")}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := groupLag(t.Context(), cfg, "GID-lag-new", tc.topics)
			if err != nil {
				t.Fatalf("groupLag(%v): %v", tc.topics, err)
			}
			if got != tc.want {
				t.Errorf("groupLag(%v) = %d, want %d", tc.topics, got, tc.want)
			}
		})
	}
	bad := Config{NameServers: []string{"127.0.0.1:1"}}
	if _, err := groupLag(t.Context(), bad, "GID-lag-new", []string{"LAG_TWO"}); err == nil {
		t.Errorf("groupLag against a closed name server port = nil error, want error")
	}
}

// TestConsumerLag: with the group's consumer stopped, N new messages are a
// lag of N; a consumer reports N while its handler is held, and 0 once it
// has consumed them.
func TestConsumerLag(t *testing.T) {
	srv, cfg := broker(t)
	const topic, group, n = "LAG", "GID-lag", 10
	srv.CreateTopic(topic, 2)
	p := newProducer(t, cfg, nil)
	sub := Subscription{Group: group, Topics: []TopicTag{{topic, "*"}}}

	// Commit offsets past a first batch, then stop the consumer.
	sendN(t, p, topic, 3)
	var mu sync.Mutex
	handled := 0
	first, err := Subscribe(t.Context(), cfg, sub, func(context.Context, Message) error {
		mu.Lock()
		defer mu.Unlock()
		handled++
		return nil
	}, testLog(t), nil)
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	waitFor(t, 30*time.Second, "first batch handled", func() bool { mu.Lock(); defer mu.Unlock(); return handled == 3 })
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	waitFor(t, 30*time.Second, "first batch committed", func() bool {
		return srv.ConsumerOffset(group, topic, 0)+srv.ConsumerOffset(group, topic, 1) == 3
	})

	sendN(t, p, topic, n)
	lag, err := groupLag(t.Context(), cfg, group, []string{topic})
	if err != nil {
		t.Fatalf("groupLag: %v", err)
	}
	if lag != n || srv.Lag(group) != n {
		t.Fatalf("groupLag with the consumer stopped = %d (testbroker Lag %d), want %d", lag, srv.Lag(group), n)
	}

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "test")
	gate := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the consumer's Close (cleanups run last first)
	subscribe(t, cfg, sub, func(ctx context.Context, _ Message) error {
		select {
		case <-gate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}, m)
	waitFor(t, 30*time.Second, fmt.Sprintf("consumer_lag %d while handlers are held", n), func() bool {
		v, ok := gaugeValue(t, reg, "test_consumer_lag", group)
		return ok && v == n
	})
	release()
	waitFor(t, 30*time.Second, "consumer_lag 0 after consuming", func() bool {
		v, ok := gaugeValue(t, reg, "test_consumer_lag", group)
		return ok && v == 0
	})
}

// TestLagCountsDueRetries: a message whose handler failed leaves the topic's
// queue (its offset is committed once it is sent back); when its retry delay
// is over it waits in %RETRY%<group>, and the group's lag counts it there.
// (While the delay runs it sits in the broker's schedule topic, shared by
// every group, and no lag figure sees it.) The retry topic is filled
// directly here; the broker's own send-back path is in its conformance suite.
func TestLagCountsDueRetries(t *testing.T) {
	srv, cfg := broker(t)
	const topic, group, n = "LAG_RETRY", "GID-lag-retry", 5
	srv.CreateTopic(topic, 1)
	srv.CreateTopic(RetryTopic(group), 1)
	p := newProducer(t, cfg, nil)
	sendN(t, p, topic, 2)
	sendN(t, p, RetryTopic(group), n)
	topics := []string{topic, RetryTopic(group)}
	lag, err := groupLag(t.Context(), cfg, group, topics)
	if err != nil {
		t.Fatalf("groupLag(%v): %v", topics, err)
	}
	if lag != 2+n {
		t.Errorf("groupLag(%v) = %d, want %d (2 new, %d due for a retry)", topics, lag, 2+n, n)
	}
}

// TestBroadcastingLagUnknown: a broadcasting group's lag poller stops at
// once and never sets the gauge.
func TestBroadcastingLagUnknown(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	c := &Consumer{
		sub:        Subscription{Group: "GID-b", Topics: []TopicTag{{"T", "*"}}, Model: Broadcasting},
		cfg:        Config{NameServers: []string{"127.0.0.1:1"}},
		log:        quietLog(),
		m:          NewMetrics(reg, "test"),
		lagStopped: make(chan struct{}),
	}
	c.pollLag(t.Context()) // returns only because it does not poll
	if v, ok := gaugeValue(t, reg, "test_consumer_lag", "GID-b"); ok {
		t.Errorf("consumer_lag{group=GID-b} = %v for a broadcasting group, want unset", v)
	}
}

// gaugeValue reads name{group} from reg; false when it is not set.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name, group string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// TestSignature pins the ACL signature to a value computed independently:
// printf 'akg01' | openssl dgst -sha1 -hmac sk -binary | base64
func TestSignature(t *testing.T) {
	t.Parallel()
	c := &remotingConn{cfg: Config{AccessKey: "ak", SecretKey: "sk"}}
	got := c.sign(map[string]string{"topic": "1", "consumerGroup": "g", "queueId": "0"})
	// keys in order: AccessKey, consumerGroup, queueId, topic
	const want = "lf0Me/nNY+m+cJQYYLuKHsI5RqM="
	if got["Signature"] != want || got["AccessKey"] != "ak" {
		t.Errorf("sign() = %v, want Signature %s and AccessKey ak", got, want)
	}
}
