package testbroker

import (
	"fmt"
	"testing"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

func TestSendSyncClusteringConsume(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	topicName := unique(t, "T")
	e.createTopic(t, topicName, 4)
	p := e.producer(t)
	const n = 20
	want := map[string]int{}
	for i := range n {
		body := fmt.Sprintf("m%d", i)
		want[body] = 1
		m := primitive.NewMessage(topicName, []byte(body))
		m.WithTag("A")
		m.WithKeys([]string{fmt.Sprintf("k%d", i)})
		res := sendSync(t, p, m)
		if len(res.OffsetMsgID) != 32 || res.MsgID == "" {
			t.Fatalf("SendSync result ids = %q / %q, want a UNIQ_KEY and a 32-hex offset id", res.MsgID, res.OffsetMsgID)
		}
	}
	s, _ := e.subscribe(t, unique(t, "G"), topicName, "*")
	waitFor(t, 30*time.Second, "20 messages", func() bool { return s.len() >= n })
	got := bodySet(s.all())
	if len(got) != n {
		t.Fatalf("received %s, want each of %d once", joinSorted(got), n)
	}
	for _, m := range s.all() {
		if m.GetTags() != "A" || m.GetKeys() == "" {
			t.Errorf("message %s tags=%q keys=%q, want A and a key", m.Body, m.GetTags(), m.GetKeys())
		}
	}
}
