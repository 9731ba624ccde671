package testbroker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// restart closes srv and runs a new broker on the same data dir and ports.
func restart(t *testing.T, srv *Server, opts Options) *Server {
	t.Helper()
	srv.Close()
	opts.NameSrvAddr, opts.BrokerAddr = srv.NameSrvAddr(), srv.BrokerAddr()
	next, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run after restart: %v", err)
	}
	t.Cleanup(func() { next.Close() })
	return next
}

func TestDataDirRestartKeepsMessagesOffsetsAndDelays(t *testing.T) {
	t.Parallel()
	if realNameSrv() != "" {
		t.Skip("restarts the embedded broker")
	}
	opts := Options{DataDir: t.TempDir(), DelayScale: 0.3}
	srv, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{ns: srv.NameSrvAddr(), srv: srv}
	topicName, group := unique(t, "T"), unique(t, "G")
	e.createTopic(t, topicName, 2)
	p := e.producer(t)
	for i := range 10 {
		sendSync(t, p, primitive.NewMessage(topicName, []byte(fmt.Sprintf("old%d", i))))
	}
	s1, c1 := e.subscribe(t, group, topicName, "*")
	waitFor(t, 30*time.Second, "10 old messages", func() bool { return s1.len() >= 10 })
	e.shutdownCommitted(t, c1, group, topicName, 2, 10)
	committed := map[int]int64{0: srv.ConsumerOffset(group, topicName, 0), 1: srv.ConsumerOffset(group, topicName, 1)}
	var want []string
	for i := range 10 {
		body := fmt.Sprintf("mid%d", i)
		m := primitive.NewMessage(topicName, []byte(body))
		m.WithKeys([]string{"k" + body})
		m.WithTag("tagA")
		sendSync(t, p, m)
		want = append(want, body)
	}
	delayedMsg := primitive.NewMessage(topicName, []byte("delayed"))
	delayedMsg.WithDelayTimeLevel(2) // 5 s × 0.3: still due after the restart
	sendSync(t, p, delayedMsg)
	want = append(want, "delayed")
	before := srv.Messages(topicName)

	// A killed process: copy the data dir while the broker runs (no Close,
	// no flush beyond what each acknowledged request did) and start on the
	// copy.
	crashed, err := Run(context.Background(), Options{DataDir: copiedDataDir(t, opts.DataDir)})
	if err != nil {
		t.Fatalf("Run on the copied log: %v", err)
	}
	if got := len(crashed.Messages(topicName)); got != len(before) {
		t.Errorf("log copied from the running broker holds %d messages, want the %d acknowledged", got, len(before))
	}
	if got := crashed.ConsumerOffset(group, topicName, 0) + crashed.ConsumerOffset(group, topicName, 1); got != 10 {
		t.Errorf("log copied from the running broker has committed offsets summing to %d, want 10", got)
	}
	crashed.Close()

	srv = restart(t, srv, opts)
	e.srv = srv
	for qid, off := range committed {
		if got := srv.ConsumerOffset(group, topicName, qid); got != off {
			t.Errorf("ConsumerOffset(queue %d) after restart = %d, want %d", qid, got, off)
		}
	}
	if got := srv.PendingDelayed(); got != 1 {
		t.Fatalf("PendingDelayed() after restart = %d, want 1", got)
	}
	after := srv.Messages(topicName)
	if len(after) != len(before) {
		t.Fatalf("restart kept %d messages, want %d", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if a.MsgID != b.MsgID || a.OffsetMsgID != b.OffsetMsgID || a.QueueOffset != b.QueueOffset ||
			!bytes.Equal(a.Body, b.Body) || a.Keys != b.Keys || a.Tags != b.Tags || a.StoreTimestamp != b.StoreTimestamp {
			t.Errorf("message %d after restart = %+v, want %+v", i, a, b)
		}
	}
	// The producer reconnects through the name server on the same port.
	for i := range 5 {
		body := fmt.Sprintf("new%d", i)
		waitFor(t, 30*time.Second, "send after restart", func() bool {
			_, err := p.SendSync(context.Background(), primitive.NewMessage(topicName, []byte(body)))
			return err == nil
		})
		want = append(want, body)
	}

	s2, _ := e.subscribe(t, group, topicName, "*")
	waitFor(t, 30*time.Second, fmt.Sprintf("%d messages after restart", len(want)), func() bool { return s2.len() >= len(want) })
	time.Sleep(200 * time.Millisecond) // let any duplicate arrive before counting
	got := bodySet(s2.all())
	for _, b := range want {
		if got[b] != 1 {
			t.Errorf("%s delivered %d times after restart, want once (all: %s)", b, got[b], joinSorted(got))
		}
	}
	if len(got) != len(want) {
		t.Errorf("delivered %s, want exactly %v", joinSorted(got), want)
	}
	// Per queue, the consumer got exactly the offsets from the committed one
	// to the end, each once. (A concurrent push consumer runs handlers in
	// parallel, so arrival order is not the queue order; the queue order
	// itself is the one compared above.)
	byQueue := map[int][]int64{}
	for _, m := range s2.all() {
		byQueue[m.Queue.QueueId] = append(byQueue[m.Queue.QueueId], m.QueueOffset)
	}
	for qid, offs := range byQueue {
		slices.Sort(offs)
		from := committed[qid]
		for i, off := range offs {
			if off != from+int64(i) {
				t.Errorf("queue %d delivered offsets %v, want each of %d..%d once", qid, offs, from, srv.MaxOffset(topicName, qid)-1)
				break
			}
		}
		if end := from + int64(len(offs)); end != srv.MaxOffset(topicName, qid) {
			t.Errorf("queue %d delivered up to %d, want up to max offset %d", qid, end, srv.MaxOffset(topicName, qid))
		}
	}
}

// TestDataDirTornTail appends garbage (or cuts the last record) after a
// clean shutdown: the broker still starts, keeps every complete record and
// logs the truncation.
func TestDataDirTornTail(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	tails := map[string]func(logBytes []byte) []byte{
		"random bytes": func([]byte) []byte {
			b := make([]byte, 1+rng.IntN(300))
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		},
		"huge length":    func([]byte) []byte { return []byte{0x7f, 0xff, 0xff, 0xff, 1, 2, 3, 4, recMessage} },
		"zero length":    func([]byte) []byte { return make([]byte, 8) },
		"bad checksum":   func([]byte) []byte { return []byte{0, 0, 0, 9, 0, 0, 0, 0, recDelayDone, 0, 0, 0, 0, 0, 0, 0, 1} },
		"half a header":  func([]byte) []byte { return []byte{0, 0} },
		"unknown kind":   func([]byte) []byte { return framed(99, nil) },
		"truncated copy": func(log []byte) []byte { return log[len(logMagic) : len(logMagic)+40] },
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			srv, err := Run(context.Background(), Options{DataDir: dir})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			srv.CreateTopic("T", 1)
			srv.mu.Lock()
			for i := range 20 {
				srv.appendLocked(srv.topics["T"], &message{body: []byte(fmt.Sprint(i)), props: map[string]string{"i": fmt.Sprint(i)}})
			}
			srv.commitOffsetLocked("G", "T", 0, 7)
			srv.mu.Unlock()
			srv.Close()
			path := filepath.Join(dir, logFileName)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			garbage := tail(data)
			if err := os.WriteFile(path, append(data, garbage...), 0o644); err != nil {
				t.Fatal(err)
			}

			var logs lockedBuffer
			srv, err = Run(context.Background(), Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("Run on a torn log: %v", err)
			}
			defer srv.Close()
			if got := len(srv.Messages("T")); got != 20 {
				t.Errorf("kept %d messages, want 20", got)
			}
			if got := srv.ConsumerOffset("G", "T", 0); got != 7 {
				t.Errorf("ConsumerOffset = %d, want 7", got)
			}
			if !strings.Contains(logs.String(), "torn or corrupt tail") {
				t.Errorf("no truncation log line in:\n%s", logs.String())
			}
			srv.CreateTopic("T", 1)
			srv.mu.Lock()
			srv.appendLocked(srv.topics["T"], &message{body: []byte("after"), props: map[string]string{}})
			srv.mu.Unlock()
			srv.flushLog()
			srv.Close()
			// The next start sees a clean log with the new message after the old ones.
			logs.Reset()
			srv, err = Run(context.Background(), Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("second Run: %v", err)
			}
			defer srv.Close()
			ms := srv.Messages("T")
			if len(ms) != 21 || string(ms[20].Body) != "after" || ms[20].QueueOffset != 20 {
				t.Errorf("after second restart: %d messages, last %+v; want 21 ending with \"after\" at offset 20", len(ms), ms[len(ms)-1])
			}
			if strings.Contains(logs.String(), "torn") {
				t.Errorf("second start still found a torn tail:\n%s", logs.String())
			}
		})
	}
}

// TestDataDirKeepsTransactionsAndTopics checks halves, topic configs and
// deletions survive a restart without a client.
func TestDataDirKeepsTransactionsAndTopics(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := Run(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	srv.CreateTopic("KEEP", 3)
	srv.CreateTopic("GONE", 2)
	srv.mu.Lock()
	srv.appendLocked(srv.topics["GONE"], &message{body: []byte("x"), props: map[string]string{}})
	half := &message{body: []byte("half"), props: map[string]string{propUniqKey: "U1", "PGROUP": "pg", propTranMsg: "true"}}
	srv.putHalfLocked(&command{ExtFields: map[string]string{}}, half, "KEEP", 2)
	rolled := &message{body: []byte("rolled"), props: map[string]string{propUniqKey: "U2", "PGROUP": "pg", propTranMsg: "true"}}
	srv.putHalfLocked(&command{ExtFields: map[string]string{}}, rolled, "KEEP", 1)
	srv.mu.Unlock()
	srv.handleEndTransaction(nil, &command{ExtFields: map[string]string{
		"commitLogOffset": fmt.Sprint(rolled.commitLogOffset), "commitOrRollback": fmt.Sprint(sysFlagTxRollback)}})
	srv.DeleteTopic("GONE")
	srv.flushLog()
	next := srv.nextCommitLog
	srv.Close()

	srv, err = Run(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Run again: %v", err)
	}
	defer srv.Close()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if tp := srv.topics["KEEP"]; tp == nil || tp.readQueues != 3 {
		t.Errorf("topic KEEP after restart = %+v, want 3 queues", tp)
	}
	if srv.topics["GONE"] != nil {
		t.Errorf("deleted topic GONE came back")
	}
	if len(srv.halves) != 1 || srv.halves[half.commitLogOffset] == nil || srv.halves[half.commitLogOffset].group != "pg" {
		t.Errorf("open transactions after restart = %v, want only U1 of group pg", srv.halves)
	}
	if srv.nextCommitLog != next {
		t.Errorf("nextCommitLog = %d, want %d", srv.nextCommitLog, next)
	}
}

func framed(kind byte, payload []byte) []byte {
	p := &persister{}
	p.record(kind, func(b []byte) []byte { return append(b, payload...) })
	return p.buf
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *lockedBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}
