package mq

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"seckill/pkg/config"
)

// consumeWithTwo subscribes two consumers of one group (built from a
// configured group, as services do), sends n messages and returns how often
// each consumer handled each body once the expected total arrived.
func consumeWithTwo(t *testing.T, g config.ConsumerGroup, n, wantTotal int) [2]map[string]int {
	t.Helper()
	srv, cfg := broker(t)
	srv.CreateTopic(g.Consumers[0].Topic, 4)
	var (
		mu    sync.Mutex
		seen  [2]map[string]int
		total int
	)
	for i := range 2 {
		seen[i] = map[string]int{}
		subscribe(t, cfg, FromConfig(g, 0), func(ctx context.Context, m Message) error {
			mu.Lock()
			defer mu.Unlock()
			seen[i][string(m.Body)]++
			total++
			return nil
		}, nil)
	}
	waitFor(t, 30*time.Second, "two consumers in the group", func() bool { return len(srv.Consumers(g.GroupID)) == 2 })
	time.Sleep(time.Second) // let both finish the rebalance that follows the second join
	p := newProducer(t, cfg, nil)
	for i := range n {
		if _, err := p.SendSync(t.Context(), Outgoing{Topic: g.Consumers[0].Topic, Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatalf("SendSync: %v", err)
		}
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d deliveries", wantTotal), func() bool { mu.Lock(); defer mu.Unlock(); return total >= wantTotal })
	time.Sleep(500 * time.Millisecond) // extra deliveries would show up here
	mu.Lock()
	defer mu.Unlock()
	return seen
}

// TestClusteringIsTheDefault guards against client-go's zero MessageModel
// (BROADCASTING): a group configured without a model must share messages.
func TestClusteringIsTheDefault(t *testing.T) {
	const n = 40
	g := config.ConsumerGroup{GroupID: "GID-model-clustering", Consumers: []config.Consumer{{Topic: "MODEL_C", Handler: "h"}}}
	seen := consumeWithTwo(t, g, n, n)
	for i := range n {
		body := fmt.Sprintf("m%d", i)
		if got := seen[0][body] + seen[1][body]; got != 1 {
			t.Errorf("%s handled %d times by the group, want 1", body, got)
		}
	}
}

// TestBroadcasting runs in a child process with HOME in a temp dir: client-go
// fixes its local offset directory ($HOME/.rocketmq_client_go) at init.
func TestBroadcasting(t *testing.T) {
	if os.Getenv("MQ_TEST_CHILD") != "broadcasting" {
		if testing.Short() {
			t.Skip("starts a broker: skipped under -short")
		}
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestBroadcasting$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MQ_TEST_CHILD=broadcasting", "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("broadcasting child: %v\n%s", err, out)
		}
		return
	}
	const n = 20
	g := config.ConsumerGroup{GroupID: "GID-model-broadcast", Model: config.ModelBroadcasting,
		Consumers: []config.Consumer{{Topic: "MODEL_B", Handler: "h"}}}
	seen := consumeWithTwo(t, g, n, 2*n)
	for c := range 2 {
		for i := range n {
			if got := seen[c][fmt.Sprintf("m%d", i)]; got != 1 {
				t.Errorf("consumer %d handled m%d %d times, want 1", c, i, got)
			}
		}
	}
}
