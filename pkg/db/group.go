package db

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"gorm.io/gorm"

	"seckill/pkg/gather"
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
// The gathering (leader, hand-off, linger) is a gather.Group: there is no
// goroutine of its own, and no caller runs other callers' groups for long.
type Group struct {
	db    *gorm.DB
	max   int
	group *gather.Group[*groupCall]

	mu    sync.Mutex
	stats GroupStats
}

// GroupStats counts what a Group did.
type GroupStats struct {
	Calls     int64 // Transaction calls
	Commits   int64 // transactions that committed more than one call
	Fallbacks int64 // groups rolled back and run again call by call
}

type groupCall struct {
	fn       func(tx *gorm.DB) error
	err      error
	panicked any // re-panicked in the caller's goroutine
	stack    []byte
}

// NewGroup returns a Group of up to max transactions (max ≤ 1: each caller
// runs alone, as gdb.Transaction). The first caller of a group waits linger
// for others to join before it begins.
func NewGroup(gdb *gorm.DB, max int, linger time.Duration) *Group {
	g := &Group{db: gdb, max: max}
	g.group = gather.New(max, linger, g.run)
	return g
}

// Transaction runs fn in a transaction shared with concurrent callers; see
// Group. ctx bounds this caller's wait; the group's transaction runs under
// the context of the caller that leads it, without its cancellation, so a
// caller giving up never aborts the others.
func (g *Group) Transaction(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if g.max <= 1 {
		return g.db.WithContext(ctx).Transaction(fn)
	}
	c := &groupCall{fn: fn}
	g.mu.Lock()
	g.stats.Calls++
	g.mu.Unlock()
	if err := g.group.Do(ctx, c); err != nil {
		// The call may still commit: the caller sees the cancellation,
		// as with a plain transaction whose commit outcome is unknown.
		return fmt.Errorf("group transaction: %w", err)
	}
	if c.panicked != nil {
		panic(fmt.Sprintf("%v\n\ngroup transaction stack:\n%s", c.panicked, c.stack))
	}
	return c.err
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
			return
		}
	}
	for _, c := range batch {
		func() {
			defer func() {
				if v := recover(); v != nil {
					c.panicked, c.stack = v, debug.Stack()
				}
			}()
			c.err = g.db.WithContext(ctx).Transaction(c.fn)
		}()
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
