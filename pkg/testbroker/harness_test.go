package testbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/admin"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

func TestMain(m *testing.M) {
	rlog.SetLogger(clientLog)
	os.Exit(m.Run())
}

// clientLog discards client-go's logs, but every call passes one mutex.
// client-go reads rmqClient.close in InvokeSync without synchronisation and
// Shutdown writes it; the rebalance goroutine Start spawns logs right after
// its last InvokeSync, so taking the same mutex before Shutdown
// (shutdownClient) orders that earlier read before the write and the race
// detector stays quiet about this client-internal race. A rebalance still in
// flight at Shutdown is a true client-go race and would still be reported.
var clientLog = &syncLogger{}

type syncLogger struct{ mu sync.Mutex }

//lint:ignore SA2001 the empty critical section is the point: a barrier for the race detector
func (l *syncLogger) sync()                                  { l.mu.Lock(); l.mu.Unlock() }
func (l *syncLogger) Debug(string, map[string]interface{})   { l.sync() }
func (l *syncLogger) Info(string, map[string]interface{})    { l.sync() }
func (l *syncLogger) Warning(string, map[string]interface{}) { l.sync() }
func (l *syncLogger) Error(string, map[string]interface{})   { l.sync() }
func (l *syncLogger) Fatal(string, map[string]interface{})   { l.sync() }
func (l *syncLogger) Level(string)                           {}
func (l *syncLogger) OutputPath(string) error                { return nil }

// shutdownClient shuts a producer or consumer down (see clientLog). Under
// -race it first gives the rebalance goroutines Start spawned a moment to
// finish: client-go reads rmqClient.close there while Shutdown writes it, a
// client race the detector would pin on whichever test runs at the time.
// The pause is not an assertion.
// shutdownCommitted shuts a push consumer down once the broker holds want
// as the group's committed offsets summed over topicName's queues. client-go
// updates an offset only after the handler returns and Shutdown drops the
// process queues first, so a handler still returning at Shutdown leaves its
// offset uncommitted; waiting for the periodic commit (every 5 s) first makes
// the committed offsets known. Against a real broker it waits out one
// commit interval.
func (e *env) shutdownCommitted(t *testing.T, c interface{ Shutdown() error }, group, topicName string, queues int, want int64) {
	t.Helper()
	if e.embedded() {
		waitFor(t, 30*time.Second, "committed offsets", func() bool {
			var sum int64
			for q := range queues {
				sum += e.srv.ConsumerOffset(group, topicName, q)
			}
			return sum == want
		})
	} else {
		time.Sleep(6 * time.Second)
	}
	if err := shutdownClient(c); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

func shutdownClient(c interface{ Shutdown() error }) error {
	if raceEnabled {
		time.Sleep(300 * time.Millisecond)
	}
	clientLog.sync()
	return c.Shutdown()
}

// env is the broker a conformance case runs against: the embedded one, or a
// real RocketMQ when ROCKETMQ_NAMESRV is set.
type env struct {
	ns  string
	srv *Server // nil against a real broker
}

func realNameSrv() string { return os.Getenv("ROCKETMQ_NAMESRV") }

// newEnv starts an embedded broker (DelayScale 0.01 unless opts change it)
// or uses the real one. TESTBROKER_DATA_DIR=1 gives the embedded broker a
// data dir with small segments and a one-byte cache, so the suite reads
// every message back from the segments.
func newEnv(t *testing.T, opts ...func(*Options)) *env {
	t.Helper()
	if ns := realNameSrv(); ns != "" {
		return &env{ns: ns}
	}
	first := func(o *Options) { o.DelayScale = 0.01 }
	if os.Getenv("TESTBROKER_DATA_DIR") == "1" {
		first = func(o *Options) {
			o.DelayScale = 0.01
			o.DataDir, o.SegmentBytes, o.CacheBytesPerQueue = t.TempDir(), 4096, 1
		}
	}
	opts = append([]func(*Options){first}, opts...)
	srv := Start(t, opts...)
	return &env{ns: srv.NameSrvAddr(), srv: srv}
}

func (e *env) embedded() bool { return e.srv != nil }

// requireEmbedded skips cases that inspect broker internals or use the time
// scale.
func (e *env) requireEmbedded(t *testing.T) {
	t.Helper()
	if !e.embedded() {
		t.Skip("needs the embedded broker (inspection or time scale)")
	}
}

var uniqueSeq atomic.Int64

var nonTopicChars = regexp.MustCompile(`[^a-zA-Z0-9_-]`)

// unique returns a topic/group name unique to this test run.
func unique(t *testing.T, prefix string) string {
	name := nonTopicChars.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s_%s_%d_%d", prefix, name, time.Now().UnixNano()%1e9, uniqueSeq.Add(1))
}

// createTopic creates a topic with the embedded API or, against a real
// broker, with client-go's admin on the broker found in TBW102's route.
func (e *env) createTopic(t testing.TB, name string, queues int) {
	t.Helper()
	if e.embedded() {
		e.srv.CreateTopic(name, queues)
		return
	}
	broker := brokerOf(t, e.ns)
	adm, err := admin.NewAdmin(admin.WithResolver(primitive.NewPassthroughResolver([]string{e.ns})))
	if err != nil {
		t.Fatalf("admin.NewAdmin: %v", err)
	}
	defer adm.Close()
	err = adm.CreateTopic(context.Background(), admin.WithTopicCreate(name), admin.WithBrokerAddrCreate(broker),
		admin.WithReadQueueNums(queues), admin.WithWriteQueueNums(queues))
	if err != nil {
		t.Fatalf("CreateTopic(%s): %v", name, err)
	}
	// The real name server learns the topic at the broker's next
	// registration; wait until the route answers.
	waitFor(t, 60*time.Second, "route of "+name, func() bool { return routeExists(e.ns, name) })
}

// rawCall sends one request with this package's codec and returns the reply.
func rawCall(addr string, req *command) (*command, error) {
	nc, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(6 * time.Second))
	if req.Language == "" {
		req.Language = "GO"
	}
	if _, err := nc.Write(encodeFrame(req)); err != nil {
		return nil, err
	}
	return readFrame(nc, DefaultMaxFrame)
}

func routeOf(ns, topicName string) (*command, error) {
	return rawCall(ns, &command{Code: 105, Version: 317, Opaque: 1, ExtFields: map[string]string{"topic": topicName}})
}

func routeExists(ns, topicName string) bool {
	resp, err := routeOf(ns, topicName)
	return err == nil && resp.Code == 0
}

func brokerOf(t testing.TB, ns string) string {
	t.Helper()
	resp, err := routeOf(ns, "TBW102")
	if err != nil || resp.Code != 0 {
		t.Fatalf("route TBW102 from %s: %v %v", ns, err, resp)
	}
	var rd struct {
		BrokerDatas []struct {
			BrokerAddrs map[string]string `json:"brokerAddrs"`
		} `json:"brokerDatas"`
	}
	// Java's fastjson may emit {0:"addr"}; normalise the key.
	body := regexp.MustCompile(`\{(\d+):`).ReplaceAll(resp.Body, []byte(`{"$1":`))
	if err := json.Unmarshal(body, &rd); err != nil || len(rd.BrokerDatas) == 0 {
		t.Fatalf("decode route %s: %v", resp.Body, err)
	}
	return rd.BrokerDatas[0].BrokerAddrs["0"]
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) producer(t *testing.T, opts ...producer.Option) rocketmq.Producer {
	t.Helper()
	opts = append([]producer.Option{
		producer.WithNameServer([]string{e.ns}),
		producer.WithGroupName(unique(t, "pg")),
		producer.WithInstanceName(unique(t, "pi")),
		producer.WithRetry(2),
	}, opts...)
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	if err := p.Start(); err != nil {
		t.Fatalf("producer Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(p) })
	return p
}

// newConsumer builds (not starts) a push consumer with a unique instance.
func (e *env) newConsumer(t *testing.T, group string, opts ...consumer.Option) rocketmq.PushConsumer {
	t.Helper()
	opts = append([]consumer.Option{
		consumer.WithNameServer([]string{e.ns}),
		consumer.WithGroupName(group),
		consumer.WithInstance(unique(t, "ci")),
		consumer.WithConsumerModel(consumer.Clustering),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
	}, opts...)
	c, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		t.Fatalf("NewPushConsumer: %v", err)
	}
	return c
}

// sink records delivered messages.
type sink struct {
	mu   sync.Mutex
	msgs []*primitive.MessageExt
}

func (s *sink) add(ms ...*primitive.MessageExt) {
	s.mu.Lock()
	s.msgs = append(s.msgs, ms...)
	s.mu.Unlock()
}

func (s *sink) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *sink) all() []*primitive.MessageExt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*primitive.MessageExt(nil), s.msgs...)
}

// bodies returns the delivered bodies as strings.
func (s *sink) bodies() []string {
	var out []string
	for _, m := range s.all() {
		out = append(out, string(m.Body))
	}
	return out
}

// subscribe starts a consumer on topic that records into a new sink.
func (e *env) subscribe(t *testing.T, group, topicName, expr string, opts ...consumer.Option) (*sink, rocketmq.PushConsumer) {
	t.Helper()
	s := &sink{}
	c := e.newConsumer(t, group, opts...)
	err := c.Subscribe(topicName, consumer.MessageSelector{Type: consumer.TAG, Expression: expr},
		func(ctx context.Context, ms ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
			s.add(ms...)
			return consumer.ConsumeSuccess, nil
		})
	if err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("consumer Start: %v", err)
	}
	t.Cleanup(func() { shutdownClient(c) })
	return s, c
}

func sendSync(t *testing.T, p rocketmq.Producer, m *primitive.Message) *primitive.SendResult {
	t.Helper()
	res, err := p.SendSync(context.Background(), m)
	if err != nil {
		t.Fatalf("SendSync(%s): %v", m.Topic, err)
	}
	if res.Status != primitive.SendOK {
		t.Fatalf("SendSync(%s) status = %v, want SendOK", m.Topic, res.Status)
	}
	return res
}

func bodySet(ms []*primitive.MessageExt) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[string(m.Body)]++
	}
	return out
}

func joinSorted(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s×%d", k, v))
	}
	return strings.Join(parts, ",")
}
