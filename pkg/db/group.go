package db

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"gorm.io/gorm"
)

// Group commits the transactions of concurrent callers together: one BEGIN
// and one COMMIT (one log flush on the server) for every caller that arrived
// while the previous group was running or within the linger. On this kind
// of machine a round trip costs the client and the server about 80 µs of CPU
// each, so sharing BEGIN/COMMIT halves what a short handler transaction costs
// (BenchmarkHandlerTx: interpolate vs interpolate-10-per-tx).
//
// Transaction keeps gorm's contract for each caller: fn's writes are
// committed if and only if Transaction returns nil. If any fn of a group
// fails (a duplicate claim, a deadlock, a refused row) or the commit fails,
// the group is rolled back and every fn is run again alone in its own
// transaction, so one caller's failure never becomes another's. fn may
// therefore run twice; it must keep its effects inside tx (closure
// variables it sets are set again by the second run).
//
// There is no goroutine of its own: the caller that finds the Group idle
// runs the first group; then, if callers are waiting, it hands the next
// group to the first of them and returns, so no caller runs other callers'
// groups for long (order-service's reservation pipeline works the same way).
type Group struct {
	db     *gorm.DB
	max    int
	linger time.Duration

	mu      sync.Mutex
	pending []*groupCall
	leading bool
	stats   GroupStats
}

// GroupStats counts what a Group did.
type GroupStats struct {
	Calls     int64 // Transaction calls
	Commits   int64 // transactions that committed more than one call
	Fallbacks int64 // groups rolled back and run again call by call
}

type groupCall struct {
	fn      func(tx *gorm.DB) error
	done    chan groupResult
	promote chan struct{} // this call runs the next group
}

type groupResult struct {
	err      error
	panicked any // re-panicked in the caller's goroutine
	stack    []byte
}

// NewGroup returns a Group of up to max transactions (max ≤ 1: each caller
// runs alone, as gdb.Transaction). The first caller of a group waits linger
// for others to join before it begins.
func NewGroup(gdb *gorm.DB, max int, linger time.Duration) *Group {
	return &Group{db: gdb, max: max, linger: linger}
}

// Transaction runs fn in a transaction shared with concurrent callers; see
// Group. ctx bounds this caller's wait; the group's transaction runs under
// the context of the caller that leads it, without its cancellation, so a
// caller giving up never aborts the others.
func (g *Group) Transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if g.max <= 1 {
		return g.db.WithContext(ctx).Transaction(fn)
	}
	c := &groupCall{fn: fn, done: make(chan groupResult, 1), promote: make(chan struct{}, 1)}
	g.mu.Lock()
	g.stats.Calls++
	g.pending = append(g.pending, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead {
		time.Sleep(g.linger) // let others join the first group
		g.lead(context.WithoutCancel(ctx))
	}
	var r groupResult
wait:
	for {
		select {
		case r = <-c.done:
			break wait
		case <-c.promote:
			g.lead(context.WithoutCancel(ctx))
		case <-ctx.Done():
			if g.leave(c) {
				// Handed the next group just now: run it (this call
				// included) so the others go on.
				g.lead(context.WithoutCancel(ctx))
			}
			select {
			case r = <-c.done:
				break wait
			default:
			}
			// The call may still commit: the caller sees the cancellation,
			// as with a plain transaction whose commit outcome is unknown.
			return fmt.Errorf("group transaction: %w", ctx.Err())
		}
	}
	if r.panicked != nil {
		panic(fmt.Sprintf("%v\n\ngroup transaction stack:\n%s", r.panicked, r.stack))
	}
	return r.err
}

// leave takes c out of the waiting calls, unless it was just handed the next
// group (true): then it must run it.
func (g *Group) leave(c *groupCall) (promoted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-c.promote:
		return true
	default:
	}
	if i := slices.Index(g.pending, c); i >= 0 {
		g.pending = slices.Delete(g.pending, i, i+1)
	}
	return false
}

// HandlerGroup is the Group a message handler uses: up to 16 transactions,
// gathered for 2 ms. pkg/mq's throttle wakes a throttled group's handlers
// together on 50 ms ticks, so they arrive within that window.
func HandlerGroup(gdb *gorm.DB) *Group { return NewGroup(gdb, 16, 2*time.Millisecond) }

// Stats returns the counts so far.
func (g *Group) Stats() GroupStats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stats
}

// lead runs one group, then hands over to the first waiting call or, when
// none is waiting, stops.
func (g *Group) lead(ctx context.Context) {
	g.mu.Lock()
	n := min(len(g.pending), g.max)
	batch := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.mu.Unlock()

	g.run(ctx, batch)

	g.mu.Lock()
	if len(g.pending) == 0 {
		g.leading = false
	} else {
		g.pending[0].promote <- struct{}{}
	}
	g.mu.Unlock()
}

func (g *Group) run(ctx context.Context, batch []*groupCall) {
	if len(batch) > 1 {
		err := g.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			for _, c := range batch {
				if err := call(c.fn, tx); err != nil {
					return err
				}
			}
			return nil
		})
		g.mu.Lock()
		if err == nil {
			g.stats.Commits++
		} else {
			g.stats.Fallbacks++
		}
		g.mu.Unlock()
		if err == nil {
			for _, c := range batch {
				c.done <- groupResult{}
			}
			return
		}
	}
	for _, c := range batch {
		var r groupResult
		func() {
			defer func() {
				if v := recover(); v != nil {
					r = groupResult{panicked: v, stack: debug.Stack()}
				}
			}()
			r.err = g.db.WithContext(ctx).Transaction(c.fn)
		}()
		c.done <- r
	}
}

// call runs fn, turning a panic into an error so the group rolls back and
// the panicking fn is run again alone (where its panic reaches its caller).
func call(fn func(tx *gorm.DB) error, tx *gorm.DB) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("panic in grouped transaction: %v", v)
		}
	}()
	return fn(tx)
}
