package testbroker

// Conformance suite: the real client-go against the embedded broker, or
// against a real RocketMQ when ROCKETMQ_NAMESRV is set (cases that inspect
// the broker or need the delay time scale are skipped there).

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// waitLong bounds waits that may include a client rebalance (20 s tick) or,
// against a real broker, real delay levels.
const waitLong = 60 * time.Second

func TestSendSyncClusteringConsume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 4)
	p := e.producer(t)
	const n = 20
	for i := range n {
		m := primitive.NewMessage(topicName, []byte(fmt.Sprintf("m%d", i)))
		m.WithTag("A")
		m.WithKeys([]string{fmt.Sprintf("k%d", i), "shared"})
		m.WithProperty("color", "blue")
		res := sendSync(t, p, m)
		if len(res.OffsetMsgID) != 32 || res.MsgID == "" || res.MsgID != m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex) {
			t.Fatalf("SendSync ids = %q / %q, want the UNIQ_KEY and a 32-hex offset id", res.MsgID, res.OffsetMsgID)
		}
		if _, err := primitive.UnmarshalMsgID([]byte(res.OffsetMsgID)); err != nil {
			t.Fatalf("UnmarshalMsgID(%q): %v", res.OffsetMsgID, err)
		}
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 30*time.Second, "20 messages", func() bool { return s.len() >= n })
	got := bodySet(s.all())
	if len(got) != n {
		t.Fatalf("received %s, want each of %d once", joinSorted(got), n)
	}
	queues := map[int]bool{}
	for _, m := range s.all() {
		queues[m.Queue.QueueId] = true
		if m.GetTags() != "A" || m.GetKeys() != fmt.Sprintf("k%s shared", m.Body[1:]) || m.GetProperty("color") != "blue" {
			t.Errorf("message %s tags=%q keys=%q color=%q, want A, k<i> shared, blue", m.Body, m.GetTags(), m.GetKeys(), m.GetProperty("color"))
		}
		if m.MsgId == "" || m.OffsetMsgId == "" || m.MsgId == m.OffsetMsgId {
			t.Errorf("message %s MsgId=%q OffsetMsgId=%q, want UNIQ_KEY and offset id", m.Body, m.MsgId, m.OffsetMsgId)
		}
	}
	if len(queues) < 2 {
		t.Errorf("messages came from queues %v, want them spread over the 4 queues", queues)
	}
	if e.embedded() {
		if got := len(e.srv.Messages(topicName)); got != n {
			t.Errorf("Messages(%s) = %d messages, want %d", topicName, got, n)
		}
	}
}

func TestSendAsyncAndOneWay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 4)
	p := e.producer(t)
	const n = 10
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range n {
		wg.Add(1)
		err := p.SendAsync(context.Background(), func(ctx context.Context, r *primitive.SendResult, err error) {
			defer wg.Done()
			if err != nil || r.Status != primitive.SendOK {
				failed.Add(1)
			}
		}, primitive.NewMessage(topicName, []byte(fmt.Sprintf("async%d", i))))
		if err != nil {
			t.Fatalf("SendAsync: %v", err)
		}
		if err := p.SendOneWay(context.Background(), primitive.NewMessage(topicName, []byte(fmt.Sprintf("oneway%d", i)))); err != nil {
			t.Fatalf("SendOneWay: %v", err)
		}
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d async sends failed", failed.Load())
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 30*time.Second, "20 messages", func() bool { return s.len() >= 2*n })
	if got := bodySet(s.all()); len(got) != 2*n {
		t.Fatalf("received %s, want %d distinct", joinSorted(got), 2*n)
	}
}

func TestBatchSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 4)
	p := e.producer(t)
	var batch []*primitive.Message
	for i := range 8 {
		m := primitive.NewMessage(topicName, []byte(fmt.Sprintf("b%d", i)))
		m.WithTag("B")
		m.WithKeys([]string{fmt.Sprintf("bk%d", i)})
		batch = append(batch, m)
	}
	res, err := p.SendSync(context.Background(), batch...)
	if err != nil || res.Status != primitive.SendOK {
		t.Fatalf("batch SendSync = %v, %v", res, err)
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "B")
	waitFor(t, 30*time.Second, "8 messages", func() bool { return s.len() >= 8 })
	var offsets []int64
	for _, m := range s.all() {
		if m.Queue.QueueId != res.MessageQueue.QueueId {
			t.Errorf("batch member %s on queue %d, want all on %d", m.Body, m.Queue.QueueId, res.MessageQueue.QueueId)
		}
		if m.GetKeys() != "bk"+string(m.Body[1:]) || m.GetTags() != "B" {
			t.Errorf("batch member %s keys=%q tags=%q", m.Body, m.GetKeys(), m.GetTags())
		}
		offsets = append(offsets, m.QueueOffset)
	}
	slices.Sort(offsets)
	for i, off := range offsets {
		if off != res.QueueOffset+int64(i) {
			t.Fatalf("batch offsets %v, want consecutive from %d", offsets, res.QueueOffset)
		}
	}
}

// TestBatchMembersKeepProducerKeys: client-go gives batch members no
// UNIQ_KEY, so their msgId is the broker's offset ID; a producer that sets
// UNIQ_KEY on each member gets it back as the msgId, on first delivery and
// after a retry through %RETRY% (what pkg/mq relies on: its message IDs).
func TestBatchMembersKeepProducerKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName, group := unique(t, "T"), unique(t, "G")
	e.createTopic(t, topicName, 1)
	s := &sink{}
	c := e.newConsumer(t, group)
	err := c.Subscribe(topicName, consumer.MessageSelector{}, func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		s.add(ms...)
		for _, m := range ms {
			if m.ReconsumeTimes == 0 && string(m.Body) == "k0" {
				return consumer.ConsumeRetryLater, nil
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(c) })
	p := e.producer(t)
	keys := map[string]string{}
	var batch []*primitive.Message
	for i := range 3 {
		body := fmt.Sprintf("k%d", i)
		m := primitive.NewMessage(topicName, []byte(body))
		keys[body] = fmt.Sprintf("%032X", time.Now().UnixNano()+int64(i))
		m.WithProperty(primitive.PropertyUniqueClientMessageIdKeyIndex, keys[body])
		batch = append(batch, m)
	}
	unkeyed := primitive.NewMessage(topicName, []byte("unkeyed"))
	if res, err := p.SendSync(context.Background(), append(batch, unkeyed)...); err != nil || res.Status != primitive.SendOK {
		t.Fatalf("batch SendSync = %v, %v", res, err)
	}
	waitFor(t, waitLong, "4 messages and the redelivery of k0", func() bool { return s.len() >= 5 })
	for _, m := range s.all() {
		body := string(m.Body)
		if body == "unkeyed" {
			if m.MsgId != m.OffsetMsgId {
				t.Errorf("member without UNIQ_KEY: MsgId %s, want its offset ID %s", m.MsgId, m.OffsetMsgId)
			}
			continue
		}
		if m.MsgId != keys[body] {
			t.Errorf("%s (reconsume %d): MsgId %s, want the producer's key %s", body, m.ReconsumeTimes, m.MsgId, keys[body])
		}
	}
}

// TestDelayInBatchIgnored: real 4.9.4 delivers batch members at once even
// with a delay level (the DELAY property stays on them).
func TestDelayInBatchIgnored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.DelayScale = 1 })
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	p := e.producer(t)
	var batch []*primitive.Message
	for i := range 2 {
		m := primitive.NewMessage(topicName, []byte(fmt.Sprintf("d%d", i)))
		m.WithDelayTimeLevel(4) // 30 s if it were honoured
		batch = append(batch, m)
	}
	if _, err := p.SendSync(context.Background(), batch...); err != nil {
		t.Fatalf("batch SendSync: %v", err)
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 20*time.Second, "batch members without delay", func() bool { return s.len() >= 2 })
	for _, m := range s.all() {
		if m.GetProperty(primitive.PropertyDelayTimeLevel) != "4" {
			t.Errorf("member %s DELAY = %q, want it kept as 4", m.Body, m.GetProperty(primitive.PropertyDelayTimeLevel))
		}
	}
}

// propertyQueueSelector sends to the queue named by the "queue" property,
// as an application's MessageQueueSelector would.
type propertyQueueSelector struct{}

func (propertyQueueSelector) Select(m *primitive.Message, mqs []*primitive.MessageQueue, _ string) *primitive.MessageQueue {
	id, _ := strconv.Atoi(m.GetProperty("queue"))
	for _, mq := range mqs {
		if mq.QueueId == id {
			return mq
		}
	}
	return nil
}

func TestQueueSelector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 4)
	p := e.producer(t, producer.WithQueueSelector(propertyQueueSelector{}))
	for i := range 12 {
		m := primitive.NewMessage(topicName, []byte(fmt.Sprintf("q%d", i%4)))
		m.WithProperty("queue", strconv.Itoa(i%4))
		if res := sendSync(t, p, m); res.MessageQueue.QueueId != i%4 {
			t.Fatalf("selected queue %d, result queue %d", i%4, res.MessageQueue.QueueId)
		}
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 30*time.Second, "12 messages", func() bool { return s.len() >= 12 })
	for _, m := range s.all() {
		if b := string(m.Body); b != fmt.Sprintf("q%d", m.Queue.QueueId) {
			t.Errorf("message %s arrived from queue %d", b, m.Queue.QueueId)
		}
	}
}

func TestTagFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 2)
	p := e.producer(t)
	for i := range 12 {
		tag := []string{"A", "B", "C"}[i%3]
		m := primitive.NewMessage(topicName, []byte(fmt.Sprintf("%s%d", tag, i)))
		m.WithTag(tag)
		sendSync(t, p, m)
	}
	sendSync(t, p, primitive.NewMessage(topicName, []byte("untagged")))
	ab, _ := e.subscribe(t, unique(t, "GAB"), topicName, "A || B")
	all, _ := e.subscribe(t, unique(t, "GALL"), topicName, "*")
	waitFor(t, 30*time.Second, "all 13 on *", func() bool { return all.len() >= 13 })
	waitFor(t, 30*time.Second, "8 on A || B", func() bool { return ab.len() >= 8 })
	for _, m := range ab.all() {
		if tag := m.GetTags(); tag != "A" && tag != "B" {
			t.Errorf("A || B consumer got %s with tag %q", m.Body, tag)
		}
	}
	if got := len(bodySet(ab.all())); got != 8 {
		t.Errorf("A || B consumer got %d distinct, want 8", got)
	}
}

func TestClusteringTwoConsumersShareQueues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 4)
	s1, _ := e.subscribe(t, group, topicName, "*")
	s2, _ := e.subscribe(t, group, topicName, "*")
	if e.embedded() {
		waitFor(t, 30*time.Second, "two group members", func() bool { return len(e.srv.Consumers(group)) == 2 })
	}
	// The first consumer rebalances on the broker's notification (40);
	// give it a moment so both own disjoint queues before producing.
	time.Sleep(500 * time.Millisecond)
	p := e.producer(t)
	const n = 40
	for i := range n {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("m%d", i))))
	}
	waitFor(t, 30*time.Second, "40 messages over both consumers", func() bool { return s1.len()+s2.len() >= n })
	merged := bodySet(append(s1.all(), s2.all()...))
	if len(merged) != n {
		t.Fatalf("received %d distinct of %d: %s", len(merged), n, joinSorted(merged))
	}
	for b, c := range merged {
		if c != 1 {
			t.Errorf("message %s delivered %d times, want once", b, c)
		}
	}
	if s1.len() == 0 || s2.len() == 0 {
		t.Errorf("consumer 1 got %d, consumer 2 got %d; want both to get some", s1.len(), s2.len())
	}
}

func TestRestartedConsumerResumesFromCommittedOffset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 2)
	p := e.producer(t)
	for i := range 10 {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("old%d", i))))
	}
	s1, c1 := e.subscribe(t, group, topicName, "*")
	waitFor(t, 30*time.Second, "10 old messages", func() bool { return s1.len() >= 10 })
	e.shutdownCommitted(t, c1, group, topicName, 2, 10)
	for i := range 5 {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("new%d", i))))
	}
	s2, _ := e.subscribe(t, group, topicName, "*")
	waitFor(t, 30*time.Second, "5 new messages", func() bool { return s2.len() >= 5 })
	for _, b := range s2.bodies() {
		if b[:3] == "old" {
			t.Errorf("restarted consumer got already committed %s", b)
		}
	}
	if e.embedded() {
		waitFor(t, 20*time.Second, "lag 0", func() bool { return e.srv.Lag(group) == 0 })
	}
}

func TestBroadcasting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 2)
	opts := []consumer.Option{consumer.WithConsumerModel(consumer.BroadCasting)}
	s1, _ := e.subscribe(t, group, topicName, "*", opts...)
	s2, _ := e.subscribe(t, group, topicName, "*", opts...)
	p := e.producer(t)
	const n = 10
	for i := range n {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("m%d", i))))
	}
	waitFor(t, 30*time.Second, "both consumers get all", func() bool { return s1.len() >= n && s2.len() >= n })
	if a, b := len(bodySet(s1.all())), len(bodySet(s2.all())); a != n || b != n {
		t.Fatalf("distinct per consumer = %d, %d; want %d each", a, b, n)
	}
}

func TestOrderly(t *testing.T) {
	if raceEnabled {
		t.Skip("client-go's orderly processQueue is racy (takeMessages vs putMessage); run without -race")
	}
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 4)
	p := e.producer(t, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	const perKey = 15
	keys := []string{"order-a", "order-b", "order-c", "order-d"}
	for i := range perKey {
		for _, k := range keys {
			m := primitive.NewMessage(topicName, []byte(fmt.Sprintf("%s/%03d", k, i)))
			m.WithShardingKey(k)
			sendSync(t, p, m)
		}
	}
	var mu sync.Mutex
	seen := map[string][]string{}
	c := e.newConsumer(t, unique(t, "G"), consumer.WithConsumerOrder(true))
	err := c.Subscribe(topicName, consumer.MessageSelector{}, func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range ms {
			k := string(m.Body[:7])
			seen[k] = append(seen[k], string(m.Body))
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(c) })
	waitFor(t, 30*time.Second, "all orderly messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, v := range seen {
			n += len(v)
		}
		return n >= perKey*len(keys)
	})
	mu.Lock()
	defer mu.Unlock()
	for k, got := range seen {
		if !slices.IsSorted(got) || len(got) != perKey {
			t.Errorf("key %s delivered %v, want %d in order", k, got, perKey)
		}
	}
}

func TestDelayLevel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 2)
	p := e.producer(t)
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	level := 2 // 5 s real, 50 ms at scale 0.01
	m := primitive.NewMessage(topicName, []byte("delayed"))
	m.WithDelayTimeLevel(level)
	sent := time.Now()
	res := sendSync(t, p, m)
	waitFor(t, waitLong, "delayed message", func() bool { return s.len() >= 1 })
	elapsed := time.Since(sent)
	got := s.all()[0]
	want := 5 * time.Second
	if e.embedded() {
		want = time.Duration(float64(want) * e.srv.opts.DelayScale)
	}
	if elapsed < want {
		t.Errorf("delivered after %v, want at least %v", elapsed, want)
	}
	if got.MsgId != res.MsgID {
		t.Errorf("delivered MsgId %q, want %q", got.MsgId, res.MsgID)
	}
	// RocketMQ 4.9.4 keeps DELAY on the delivered message (5.x removes it).
	if d := got.GetProperty(primitive.PropertyDelayTimeLevel); d != "" && d != strconv.Itoa(level) {
		t.Errorf("delivered DELAY = %q, want %d or removed", d, level)
	}
	if got.GetProperty("REAL_TOPIC") != topicName {
		t.Errorf("delivered REAL_TOPIC = %q, want %q", got.GetProperty("REAL_TOPIC"), topicName)
	}
}

func TestRetryRedelivers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 1)
	s := &sink{}
	c := e.newConsumer(t, group)
	err := c.Subscribe(topicName, consumer.MessageSelector{}, func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		s.add(ms...)
		for _, m := range ms {
			if m.ReconsumeTimes == 0 {
				return consumer.ConsumeRetryLater, nil
			}
		}
		return consumer.ConsumeSuccess, nil
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(c) })
	p := e.producer(t)
	m := primitive.NewMessage(topicName, []byte("retry-me"))
	m.WithKeys([]string{"rk"})
	res := sendSync(t, p, m)
	waitFor(t, waitLong, "redelivery", func() bool { return s.len() >= 2 })
	got := s.all()
	if got[1].ReconsumeTimes != 1 || got[1].MsgId != res.MsgID || got[1].Topic != topicName || got[1].GetKeys() != "rk" {
		t.Errorf("redelivery ReconsumeTimes=%d MsgId=%q Topic=%q Keys=%q, want 1, %q, %q, rk",
			got[1].ReconsumeTimes, got[1].MsgId, got[1].Topic, got[1].GetKeys(), res.MsgID, topicName)
	}
}

func TestDLQAfterMaxReconsume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 1)
	s := &sink{}
	c := e.newConsumer(t, group, consumer.WithMaxReconsumeTimes(2))
	err := c.Subscribe(topicName, consumer.MessageSelector{}, func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		s.add(ms...)
		return consumer.ConsumeRetryLater, nil
	})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(c) })
	p := e.producer(t)
	res := sendSync(t, p, primitive.NewMessage(topicName, []byte("poison")))
	waitFor(t, 2*waitLong, "3 deliveries", func() bool { return s.len() >= 3 })
	for i, m := range s.all()[:3] {
		if m.ReconsumeTimes != int32(i) || m.MsgId != res.MsgID {
			t.Errorf("delivery %d ReconsumeTimes=%d MsgId=%q, want %d, %q", i, m.ReconsumeTimes, m.MsgId, i, res.MsgID)
		}
	}
	if !e.embedded() {
		return
	}
	waitFor(t, 30*time.Second, "DLQ entry", func() bool { return len(e.srv.DLQ(group)) == 1 })
	d := e.srv.DLQ(group)[0]
	if d.MsgID != res.MsgID || string(d.Body) != "poison" || d.Properties["RETRY_TOPIC"] != topicName {
		t.Errorf("DLQ message %+v, want MsgID %q body poison RETRY_TOPIC %s", d, res.MsgID, topicName)
	}
	if got := s.len(); got != 3 {
		t.Errorf("deliveries = %d, want 3 (no delivery after the DLQ)", got)
	}
}

func TestConsumerOnMissingTopic(t *testing.T) {
	t.Parallel()
	start := func(e *env) error {
		c := e.newConsumer(t, unique(t, "G"))
		if err := c.Subscribe(unique(t, "MISSING"), consumer.MessageSelector{}, func(context.Context, ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			return consumer.ConsumeSuccess, nil
		}); err != nil {
			return err
		}
		err := c.Start()
		shutdownClient(c)
		return err
	}
	if realNameSrv() != "" {
		if err := start(newEnv(t)); err == nil {
			t.Fatal("Start on a missing topic succeeded against real RocketMQ, want an error")
		}
		return
	}
	if err := start(newEnv(t, func(o *Options) { o.StrictTopics = true })); err == nil {
		t.Error("StrictTopics: Start on a missing topic succeeded, want route-not-found error like real RocketMQ")
	}
	// Default: route lookups create the topic (documented divergence).
	if err := start(newEnv(t)); err != nil {
		t.Errorf("default: Start on a missing topic = %v, want auto-created", err)
	}
}

func TestProducerAutoCreatesTopic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(o *Options) { o.StrictTopics = true })
	topicName := unique(t, "AUTO")
	p := e.producer(t)
	sendSync(t, p, primitive.NewMessage(topicName, []byte("x")))
	if e.embedded() && len(e.srv.Messages(topicName)) != 1 {
		t.Fatalf("Messages(%s) = %v, want 1", topicName, e.srv.Messages(topicName))
	}
}

// TestQueueOffsetQueries drives GET_MAX_OFFSET (30), GET_MIN_OFFSET (31) and
// SEARCH_OFFSET_BY_TIMESTAMP (29) over the wire.
func TestQueueOffsetQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 1)
	p := e.producer(t)
	before := time.Now().Add(-time.Second).UnixMilli()
	for i := range 3 {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(strconv.Itoa(i))))
	}
	broker := brokerOf(t, e.ns)
	query := func(code int16, ext map[string]string) string {
		t.Helper()
		ext["topic"], ext["queueId"] = topicName, "0"
		resp, err := rawCall(broker, &command{Code: code, Version: 317, Opaque: 9, ExtFields: ext})
		if err != nil || resp.Code != codeSuccess {
			t.Fatalf("request %d: %v %+v", code, err, resp)
		}
		return resp.ext("offset")
	}
	if got := query(30, map[string]string{}); got != "3" {
		t.Errorf("GET_MAX_OFFSET = %s, want 3", got)
	}
	if got := query(31, map[string]string{}); got != "0" {
		t.Errorf("GET_MIN_OFFSET = %s, want 0", got)
	}
	if got := query(29, map[string]string{"timestamp": strconv.FormatInt(before, 10)}); got != "0" {
		t.Errorf("SEARCH_OFFSET_BY_TIMESTAMP(before the sends) = %s, want 0", got)
	}
	future := time.Now().Add(time.Hour).UnixMilli()
	if got := query(29, map[string]string{"timestamp": strconv.FormatInt(future, 10)}); got != "2" {
		t.Errorf("SEARCH_OFFSET_BY_TIMESTAMP(future) = %s, want 2 (the last message, as 4.9.4)", got)
	}
}

// TestConsumerLeaveRebalancesSurvivor: when one member of a group goes away
// the broker notifies the others (40), so the survivor takes over the
// orphaned queues well before client-go's 20 s rebalance tick.
func TestConsumerLeaveRebalancesSurvivor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	group := unique(t, "G")
	e.createTopic(t, topicName, 4)
	s1, _ := e.subscribe(t, group, topicName, "*")
	s2, c2 := e.subscribe(t, group, topicName, "*")
	p := e.producer(t)
	// Warm up until both members own queues (the split itself is driven by
	// the notification the first member gets when the second joins).
	for i := 0; s1.len() == 0 || s2.len() == 0; i++ {
		if i == 400 {
			t.Fatalf("after %d sends consumer 1 got %d, consumer 2 got %d; want both > 0", i, s1.len(), s2.len())
		}
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("warm%d", i))))
		time.Sleep(10 * time.Millisecond) // pacing, not an assertion
	}
	if err := shutdownClient(c2); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	const n = 16
	for i := range n {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("new%d", i))))
	}
	// Without the notification the survivor would wait for its 20 s tick.
	waitFor(t, 15*time.Second, "survivor consumes the new messages on every queue", func() bool {
		got := 0
		for b := range bodySet(s1.all()) {
			if len(b) > 3 && b[:3] == "new" {
				got++
			}
		}
		return got == n
	})
}
