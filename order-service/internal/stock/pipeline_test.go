package stock

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/testenv"
)

// echo returns its key and argument, so each caller can tell its own reply.
var echo = redis.NewScript(`return {KEYS[1], ARGV[1]}`)

func noCheck(context.Context) error { return nil }

func callAll(t *testing.T, p *pipeline, n int, ctxOf func(i int) context.Context) []error {
	t.Helper()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key, arg := fmt.Sprintf("k%d", i), fmt.Sprintf("a%d", i)
			vals, err := p.run(ctxOf(i), []string{key}, arg)
			switch {
			case err != nil:
				errs[i] = err
			case len(vals) != 2 || vals[0] != key || vals[1] != arg:
				errs[i] = fmt.Errorf("reply %v, want [%s %s]", vals, key, arg)
			}
		})
	}
	wg.Wait()
	return errs
}

// TestPipelineGroupsConcurrentCalls: every caller gets its own reply, and
// concurrent calls share round trips.
func TestPipelineGroupsConcurrentCalls(t *testing.T) {
	p := newPipeline(testenv.Redis(t), echo, noCheck)
	const n = 500
	for i, err := range callAll(t, p, n, func(int) context.Context { return t.Context() }) {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if groups := p.group.Groups(); groups >= n {
		t.Errorf("%d calls went out in %d groups, want fewer groups than calls", n, groups)
	}
	t.Logf("%d concurrent calls in %d pipelines", n, p.group.Groups())
}

// TestPipelineReloadsFlushedScript: after SCRIPT FLUSH (as after a Redis
// restart) the grouped EVALSHAs fail with NOSCRIPT; beforeLoad runs, the
// script is loaded again and every call gets its reply. When beforeLoad
// fails, the calls fail with it and the script is not loaded.
func TestPipelineReloadsFlushedScript(t *testing.T) {
	rdb := testenv.Redis(t)
	var checks atomic.Int64
	fail := atomic.Bool{}
	fail.Store(true)
	p := newPipeline(rdb, echo, func(context.Context) error {
		checks.Add(1)
		if fail.Load() {
			return errors.New("check failed")
		}
		return nil
	})
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.run(t.Context(), []string{"k"}, "a"); err == nil {
		t.Fatal("call with beforeLoad failing: error = nil, want its error")
	}
	if n, _ := rdb.ScriptExists(t.Context(), echo.Hash()).Result(); n[0] {
		t.Fatal("script loaded although beforeLoad failed")
	}
	fail.Store(false)
	for i, err := range callAll(t, p, 100, func(int) context.Context { return t.Context() }) {
		if err != nil {
			t.Errorf("call %d after SCRIPT FLUSH: %v", i, err)
		}
	}
	if checks.Load() < 2 {
		t.Errorf("beforeLoad ran %d times, want at least 2 (one per group that met NOSCRIPT)", checks.Load())
	}
}

// TestPipelineCancelledCallersDoNotStall: callers that give up (some of them
// while handed the next group) never leave the others waiting.
func TestPipelineCancelledCallersDoNotStall(t *testing.T) {
	p := newPipeline(testenv.Redis(t), echo, noCheck)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	errs := callAll(t, p, 300, func(i int) context.Context {
		if i%3 == 0 {
			return cancelled
		}
		return t.Context()
	})
	for i, err := range errs {
		if i%3 != 0 && err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	if !p.group.Idle() {
		t.Error("after all calls returned: a group running or calls pending; want idle")
	}
}
