package stock

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/gather"
)

// pipeline runs the script calls of concurrent requests as one Redis
// pipeline: one write and one read for a whole group of EVALSHAs instead of
// a round trip each, for the client and for Redis. Each call stays atomic
// on the server and runs in arrival order. Nothing waits to fill a group:
// a call that finds no group running starts one at once, and calls that
// arrive while it runs form the next (BenchmarkReserve: pipelined vs
// one-by-one). The gathering is a gather.Group: no goroutine of its own,
// and no request runs other requests' groups for long.
type pipeline struct {
	rdb    redis.UniversalClient
	script *redis.Script
	// beforeLoad runs before the script is loaded into a Redis that lost
	// it (NOSCRIPT): a restarted one (see epoch.lua).
	beforeLoad func(context.Context) error
	group      *gather.Group[*scriptCall]
}

type scriptCall struct {
	keys []string
	args []any
	vals []any
	err  error
}

// maxPipeline bounds a group; at 64 concurrent requests groups stay smaller.
const maxPipeline = 128

func newPipeline(rdb redis.UniversalClient, script *redis.Script, beforeLoad func(context.Context) error) *pipeline {
	p := &pipeline{rdb: rdb, script: script, beforeLoad: beforeLoad}
	p.group = gather.New(maxPipeline, 0, p.exec)
	return p
}

// run runs the script with keys and args and returns its reply (a Lua table
// as []any). ctx bounds this caller's wait; a group runs under the context
// of the call that runs it, without its cancellation.
func (p *pipeline) run(ctx context.Context, keys []string, args ...any) ([]any, error) {
	c := &scriptCall{keys: keys, args: args}
	if err := p.group.Do(ctx, c); err != nil {
		// The script may still run: as with a plain call whose reply
		// never came back, the caller cannot know.
		return nil, fmt.Errorf("reserve: %w", err)
	}
	return c.vals, c.err
}

// exec runs a group: EVALSHA only (never go-redis's Run, which would load
// the script without beforeLoad), in one pipeline.
func (p *pipeline) exec(ctx context.Context, group []*scriptCall) {
	var cmds []*redis.Cmd
	if len(group) == 1 {
		c := group[0]
		cmds = []*redis.Cmd{p.script.EvalSha(ctx, p.rdb, c.keys, c.args...)}
	} else {
		pipe := p.rdb.Pipeline()
		cmds = make([]*redis.Cmd, len(group))
		for i, c := range group {
			cmds[i] = p.script.EvalSha(ctx, pipe, c.keys, c.args...)
		}
		_, _ = pipe.Exec(ctx) // each command carries its own error
	}
	var loadErr error
	loaded := false
	for i, c := range group {
		c.vals, c.err = cmds[i].Slice()
		if c.err == nil || !isNoScript(c.err) {
			continue
		}
		// Redis lost its script cache (a restart, SCRIPT FLUSH): check
		// what it lost before loading the script again (EVAL).
		if !loaded {
			loaded = true
			if loadErr = p.beforeLoad(ctx); loadErr == nil {
				loadErr = p.script.Load(ctx, p.rdb).Err()
			}
		}
		if loadErr != nil {
			c.err = fmt.Errorf("load the reservation script: %w", loadErr)
			continue
		}
		c.vals, c.err = p.script.EvalSha(ctx, p.rdb, c.keys, c.args...).Slice()
	}
}

func isNoScript(err error) bool {
	var rerr redis.Error
	return errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOSCRIPT")
}
