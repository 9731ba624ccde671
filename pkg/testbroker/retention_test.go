package testbroker

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
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
	n, bytes := len(q.msgs), q.bytes
	srv.mu.Unlock()
	if bytes > 4096 || n == 0 || srv.MaxOffset("BYTES", 0) != 100 {
		t.Fatalf("kept %d messages / %d bytes (max offset %d), want ≤ 4096 bytes and offsets up to 100", n, bytes, srv.MaxOffset("BYTES", 0))
	}
}

// A drop below a group's committed offset is logged at Warn with the group,
// at most once per dropCheckEvery per queue; drops that leave no group
// behind are not.
func TestRetentionWarnsOfUnconsumedDrops(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	srv := Start(t, func(o *Options) {
		o.RetainPerQueue = 10
		o.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	srv.CreateTopic("DROPS", 1)
	srv.mu.Lock()
	tp := srv.topics["DROPS"]
	appendN := func(n int) {
		for range n {
			srv.appendLocked(tp, &message{body: []byte("x")})
		}
	}
	srv.offsets[offsetKey{"GID-caught-up", "DROPS", 0}] = 0
	appendN(10)
	srv.offsets[offsetKey{"GID-caught-up", "DROPS", 0}] = 10
	appendN(5) // drops offsets 0..4: the group is past them
	srv.mu.Unlock()
	if strings.Contains(buf.String(), "retention dropped") {
		t.Fatalf("warned although every group had consumed the dropped messages:\n%s", buf.String())
	}

	srv.mu.Lock()
	srv.offsets[offsetKey{"GID-behind", "DROPS", 0}] = 5
	tp.queues[0].dropChecked = time.Time{} // the check above counts against the interval
	appendN(3)                             // drops 5..7, which GID-behind had not consumed
	appendN(3)                             // within the interval: no second line
	srv.mu.Unlock()
	out := buf.String()
	if n := strings.Count(out, "retention dropped messages a consumer group had not consumed"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, out)
	}
	if !strings.Contains(out, `"groups":["GID-behind"]`) || !strings.Contains(out, `"topic":"DROPS"`) {
		t.Errorf("warning does not name the group and topic:\n%s", out)
	}
}
