// Package gather runs the work of concurrent callers in groups: one database
// transaction, one Redis pipeline or one batch handler call for everyone who
// arrived while the previous group was running. On this kind of machine a
// round trip costs the client and the server tens of microseconds of CPU
// each, so sharing it is what makes the hot paths affordable
// (pkg/db.Group, pkg/mq's batch handlers, order-service's reservation
// pipeline).
//
// There is no goroutine of its own: the caller that finds the Group idle
// waits the linger, then runs the first group; then, if callers are
// waiting, it hands the next group to the first of them and returns, so no
// caller runs other callers' groups for long.
package gather

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Group gathers items of concurrent callers and runs them in groups of up to
// max with run, one group at a time.
type Group[T any] struct {
	max    int
	linger time.Duration
	run    func(ctx context.Context, items []T)

	mu      sync.Mutex
	pending []*waiter[T]
	leading bool
	groups  int
}

type waiter[T any] struct {
	item    T
	done    chan struct{} // closed once the group holding item has run
	promote chan struct{} // this caller runs the next group
}

// New returns a Group running groups of up to size items (at least 1) with
// run. The caller that starts a Group's work waits linger for others to
// join its first group. run gets the items in arrival order and must not
// panic: results go back through the items (pointers).
func New[T any](size int, linger time.Duration, run func(ctx context.Context, items []T)) *Group[T] {
	return &Group[T]{max: max(size, 1), linger: linger, run: run}
}

// Do adds item to the next group and returns nil once a group holding it
// has run. If ctx ends first it returns ctx.Err(): item may still run
// later, as a request whose reply never came back may still have been
// carried out. A group runs under the context of the caller that runs it,
// without its cancellation, so a caller giving up never aborts the others.
func (g *Group[T]) Do(ctx context.Context, item T) error {
	w := &waiter[T]{item: item, done: make(chan struct{}), promote: make(chan struct{}, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead {
		if g.linger > 0 {
			time.Sleep(g.linger)
		}
		g.lead(context.WithoutCancel(ctx))
	}
	for {
		select {
		case <-w.done:
			return nil
		case <-w.promote:
			g.lead(context.WithoutCancel(ctx))
		case <-ctx.Done():
			if g.leave(w) {
				// Handed the next group just now: run it (item
				// included) so the others go on.
				g.lead(context.WithoutCancel(ctx))
			}
			select {
			case <-w.done:
				return nil
			default:
				return ctx.Err()
			}
		}
	}
}

// leave takes w out of the waiting callers, unless it was just handed the
// next group (true): then it must run it.
func (g *Group[T]) leave(w *waiter[T]) (promoted bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-w.promote:
		return true
	default:
	}
	if i := slices.Index(g.pending, w); i >= 0 {
		g.pending = slices.Delete(g.pending, i, i+1)
	}
	return false
}

// lead runs one group, then hands over to the first waiting caller or, when
// none is waiting, stops.
func (g *Group[T]) lead(ctx context.Context) {
	g.mu.Lock()
	n := min(len(g.pending), g.max)
	group := g.pending[:n:n]
	g.pending = g.pending[n:]
	g.groups++
	g.mu.Unlock()

	items := make([]T, n)
	for i, w := range group {
		items[i] = w.item
	}
	g.run(ctx, items)
	for _, w := range group {
		close(w.done)
	}

	g.mu.Lock()
	if len(g.pending) == 0 {
		g.leading = false
	} else {
		g.pending[0].promote <- struct{}{}
	}
	g.mu.Unlock()
}

// Groups is how many groups have run (or are running).
func (g *Group[T]) Groups() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups
}

// Idle reports whether no group is running and no caller is waiting.
func (g *Group[T]) Idle() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return !g.leading && len(g.pending) == 0
}
