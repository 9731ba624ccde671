package stock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// pipeline runs the script calls of concurrent requests as one Redis
// pipeline: one write and one read for a whole group of EVALSHAs instead of
// a round trip each, for the client and for Redis. Each call stays atomic
// on the server and runs in arrival order. Nothing waits to fill a group:
// a call that finds no group running starts one at once, and calls that
// arrive while it runs form the next (BenchmarkReserve: pipelined vs
// one-by-one).
//
// There is no goroutine of its own: the caller that starts a group runs it;
// then, if calls are waiting, it hands the next group to the first of them
// and returns, so no request runs other requests' groups for long.
type pipeline struct {
	rdb    redis.UniversalClient
	script *redis.Script
	max    int

	mu      sync.Mutex
	pending []*scriptCall
	running bool
	groups  int // groups sent, for tests
}

type scriptCall struct {
	keys    []string
	args    []any
	vals    []any
	err     error
	done    chan struct{} // closed when vals/err are set
	promote chan struct{} // this call runs the next group
}

// maxPipeline bounds a group; at 64 concurrent requests groups stay smaller.
const maxPipeline = 128

func newPipeline(rdb redis.UniversalClient, script *redis.Script) *pipeline {
	return &pipeline{rdb: rdb, script: script, max: maxPipeline}
}

// run runs the script with keys and args and returns its reply (a Lua table
// as []any). ctx bounds this caller's wait; a group runs under the context
// of the call that runs it, without its cancellation.
func (p *pipeline) run(ctx context.Context, keys []string, args ...any) ([]any, error) {
	c := &scriptCall{keys: keys, args: args, done: make(chan struct{}), promote: make(chan struct{}, 1)}
	p.mu.Lock()
	p.pending = append(p.pending, c)
	lead := !p.running
	p.running = true
	p.mu.Unlock()
	if lead {
		p.lead(context.WithoutCancel(ctx))
	}
	for {
		select {
		case <-c.done:
			return c.vals, c.err
		case <-c.promote:
			p.lead(context.WithoutCancel(ctx))
		case <-ctx.Done():
			if p.leave(c) {
				// Handed the next group just now: run it (this call
				// included, its reply unread) so the others go on.
				p.lead(context.WithoutCancel(ctx))
			}
			// The script may still run: as with a plain call whose reply
			// never came back, the caller cannot know.
			return nil, fmt.Errorf("reserve: %w", ctx.Err())
		}
	}
}

// leave takes c out of the waiting calls, unless it was just handed the next
// group (true): then it must run it.
func (p *pipeline) leave(c *scriptCall) (promoted bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-c.promote:
		return true
	default:
	}
	if i := slices.Index(p.pending, c); i >= 0 {
		p.pending = slices.Delete(p.pending, i, i+1)
	}
	return false
}

// lead runs one group, then hands over to the first waiting call or, when
// none is waiting, stops.
func (p *pipeline) lead(ctx context.Context) {
	p.mu.Lock()
	n := min(len(p.pending), p.max)
	group := p.pending[:n:n]
	p.pending = p.pending[n:]
	p.groups++
	p.mu.Unlock()

	p.exec(ctx, group)

	p.mu.Lock()
	if len(p.pending) == 0 {
		p.running = false
	} else {
		p.pending[0].promote <- struct{}{}
	}
	p.mu.Unlock()
}

func (p *pipeline) exec(ctx context.Context, group []*scriptCall) {
	if len(group) == 1 {
		c := group[0]
		c.vals, c.err = p.script.Run(ctx, p.rdb, c.keys, c.args...).Slice()
		close(c.done)
		return
	}
	pipe := p.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(group))
	for i, c := range group {
		cmds[i] = p.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx) // each command carries its own error
	for i, c := range group {
		c.vals, c.err = cmds[i].Slice()
		if c.err != nil && isNoScript(c.err) {
			// Redis lost its script cache (restart, SCRIPT FLUSH): Run
			// loads it again (EVAL).
			c.vals, c.err = p.script.Run(ctx, p.rdb, c.keys, c.args...).Slice()
		}
		close(c.done)
	}
}

func isNoScript(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}
