package mq

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"seckill/pkg/testbroker"
)

func TestIDGen(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 30, 23, 59, 59, 998e6, time.UTC)
	g := newIDGen(func() time.Time { return now })
	decode := func(id string) (salt []byte, ms uint32, seq uint16) {
		t.Helper()
		raw, err := hex.DecodeString(id)
		if err != nil || len(raw) != 16 || len(id) != 32 {
			t.Fatalf("ID %q is not 16 bytes of hex", id)
		}
		if got := raw[:6]; string(got) != string(g.prefix[:]) {
			t.Fatalf("ID %s starts %X, want the host address and pid %X", id, got, g.prefix)
		}
		return raw[6:10], binary.BigEndian.Uint32(raw[10:14]), binary.BigEndian.Uint16(raw[14:16])
	}
	seen := map[string]bool{}
	next := func() string {
		t.Helper()
		id := g.next()
		if seen[id] {
			t.Fatalf("ID %s issued twice", id)
		}
		seen[id] = true
		return id
	}

	monthMS := uint32(now.Sub(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)).Milliseconds())
	salt1, ms, seq := decode(next())
	if ms != monthMS || seq != 0 {
		t.Fatalf("first ID = ms %d seq %d, want ms %d (since the month began) seq 0", ms, seq, monthMS)
	}
	// The same millisecond: the sequence counts up, then a full sequence
	// moves on to the next millisecond instead of wrapping.
	for want := 1; want <= 0xFFFF; want++ {
		if _, ms, seq = decode(next()); ms != monthMS || int(seq) != want {
			t.Fatalf("ID %d in one millisecond = ms %d seq %d, want ms %d seq %d", want, ms, seq, monthMS, want)
		}
	}
	if _, ms, seq = decode(next()); ms != monthMS+1 || seq != 0 {
		t.Fatalf("ID after a full sequence = ms %d seq %d, want ms %d seq 0", ms, seq, monthMS+1)
	}
	// The clock goes back: IDs still move forward.
	now = now.Add(-time.Second)
	if _, ms, seq = decode(next()); ms != monthMS+1 || seq != 1 {
		t.Fatalf("ID after the clock went back = ms %d seq %d, want ms %d seq 1", ms, seq, monthMS+1)
	}
	// A new month starts the milliseconds over, with a new salt.
	now = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	salt2, ms, seq := decode(next())
	if ms != 0 || seq != 0 {
		t.Fatalf("first ID of a month = ms %d seq %d, want 0 0", ms, seq)
	}
	if string(salt1) == string(salt2) {
		t.Errorf("salt %X kept across the month boundary, want a new one", salt1)
	}
}

// TestIDGenConcurrent: IDs issued by many goroutines at once are distinct.
func TestIDGenConcurrent(t *testing.T) {
	t.Parallel()
	g := newIDGen(time.Now)
	const workers, each = 8, 20000
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range each {
				ids[w] = append(ids[w], g.next())
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool, workers*each)
	for _, part := range ids {
		for _, id := range part {
			if seen[id] {
				t.Fatalf("ID %s issued twice", id)
			}
			seen[id] = true
		}
	}
}

// consumed is what a test handler saw, by body.
type consumed struct {
	mu   sync.Mutex
	msgs map[string][]Message
}

func (c *consumed) add(m Message) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.msgs == nil {
		c.msgs = map[string][]Message{}
	}
	c.msgs[string(m.Body)] = append(c.msgs[string(m.Body)], m)
	return len(c.msgs[string(m.Body)])
}

func (c *consumed) snapshot() map[string][]Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.msgs)
}

// sendEveryWay sends n batch members (two sharding keys) and one message
// each by SendSync, SendAsync and SendOneWay to topic; it returns the
// bodies.
func sendEveryWay(t *testing.T, p *Producer, topic, prefix string, n int) []string {
	t.Helper()
	var batch []Outgoing
	var bodies []string
	for i := range n {
		key := fmt.Sprintf("key-%d", i%2)
		body := fmt.Sprintf("%s-batch-%03d", prefix, i)
		batch = append(batch, Outgoing{Topic: topic, Tag: "b", Keys: []string{key}, ShardingKey: key, Body: []byte(body)})
		bodies = append(bodies, body)
	}
	if err := p.SendBatch(t.Context(), batch); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	sync := prefix + "-sync"
	if _, err := p.SendSync(t.Context(), Outgoing{Topic: topic, Tag: "s", Body: []byte(sync)}); err != nil {
		t.Fatalf("SendSync: %v", err)
	}
	async := prefix + "-async"
	done := make(chan error, 1)
	if err := p.SendAsync(t.Context(), Outgoing{Topic: topic, Tag: "a", Body: []byte(async)}, func(_ SendResult, err error) { done <- err }); err != nil {
		t.Fatalf("SendAsync: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("SendAsync callback: %v", err)
	}
	oneway := prefix + "-oneway"
	if err := p.SendOneWay(t.Context(), Outgoing{Topic: topic, Tag: "o", Body: []byte(oneway)}); err != nil {
		t.Fatalf("SendOneWay: %v", err)
	}
	return append(bodies, sync, async, oneway)
}

// TestMessageIDsSurviveStoreReset sends the same traffic to a broker, then
// to a new broker with an empty store on the same address: the broker hands
// out the same offset IDs again, and Message.ID, which consumers
// deduplicate on, must still never repeat (it did for batch members, whose
// ID was the offset ID).
func TestMessageIDsSurviveStoreReset(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a broker: skipped under -short")
	}
	const topic, n = "RESET", 20
	var nameSrv, brokerAddr string
	phase := func(name string) map[string][]Message {
		srv, err := testbroker.Run(context.Background(), testbroker.Options{NameSrvAddr: nameSrv, BrokerAddr: brokerAddr})
		if err != nil {
			t.Fatalf("%s: testbroker.Run: %v", name, err)
		}
		defer srv.Close()
		nameSrv, brokerAddr = srv.NameSrvAddr(), srv.BrokerAddr()
		srv.CreateTopic(topic, 2)
		cfg := Config{NameServers: []string{nameSrv}}
		p, err := NewProducer(t.Context(), cfg, "PID-reset", testLog(t), nil)
		if err != nil {
			t.Fatalf("%s: NewProducer: %v", name, err)
		}
		defer p.Close()
		var got consumed
		c, err := Subscribe(t.Context(), cfg, Subscription{Group: "GID-reset", Topics: []TopicTag{{topic, "*"}}},
			func(_ context.Context, m Message) error { got.add(m); return nil }, testLog(t), nil)
		if err != nil {
			t.Fatalf("%s: Subscribe: %v", name, err)
		}
		defer c.Close()
		bodies := sendEveryWay(t, p, topic, "m", n) // the same bodies in both phases
		waitFor(t, 30*time.Second, name+": every message consumed", func() bool { return len(got.snapshot()) == len(bodies) })
		return got.snapshot()
	}
	before := phase("first store")
	after := phase("second store")

	ids, offsetIDs := map[string]string{}, map[string]bool{}
	for body, ms := range before {
		ids[ms[0].ID] = body
		offsetIDs[ms[0].OffsetID] = true
	}
	if len(ids) != len(before) {
		t.Fatalf("first store: %d distinct IDs for %d messages", len(ids), len(before))
	}
	repeated := 0
	for body, ms := range after {
		m := ms[0]
		if offsetIDs[m.OffsetID] {
			repeated++
		}
		if m.ID == m.OffsetID {
			t.Errorf("%s: ID is the offset ID %s, want the producer's", body, m.ID)
		}
		if prev, ok := ids[m.ID]; ok {
			t.Errorf("%s after the store reset has ID %s, the ID of %s before it", body, m.ID, prev)
		}
	}
	if repeated == 0 {
		t.Fatalf("no offset ID repeated after the store reset: the test did not reproduce the hazard")
	}
	t.Logf("%d of %d offset IDs repeated after the store reset", repeated, len(after))
}

// TestRedeliveryKeepsID: a message that comes back through the retry topic
// has the ID of its first delivery, batch members included (theirs was the
// offset ID of each stored copy).
func TestRedeliveryKeepsID(t *testing.T) {
	srv, cfg := broker(t)
	const topic = "REDELIVER"
	srv.CreateTopic(topic, 2)
	var got consumed
	subscribe(t, cfg, Subscription{Group: "GID-redeliver", Topics: []TopicTag{{topic, "*"}}},
		func(_ context.Context, m Message) error {
			if got.add(m) == 1 {
				return fmt.Errorf("fail the first delivery")
			}
			return nil
		}, nil)
	p := newProducer(t, cfg, nil)
	bodies := sendEveryWay(t, p, topic, "r", 6)
	waitFor(t, 30*time.Second, "every message delivered twice", func() bool {
		snap := got.snapshot()
		return len(snap) == len(bodies) && !slices.ContainsFunc(bodies, func(b string) bool { return len(snap[b]) < 2 })
	})
	for body, ms := range got.snapshot() {
		if ms[1].ReconsumeTimes != 1 || ms[1].OffsetID == ms[0].OffsetID {
			t.Fatalf("%s: second delivery %+v is not a copy from the retry topic", body, ms[1])
		}
		if ms[0].ID != ms[1].ID {
			t.Errorf("%s: ID %s on the first delivery, %s on the redelivery; want the same", body, ms[0].ID, ms[1].ID)
		}
	}
}
