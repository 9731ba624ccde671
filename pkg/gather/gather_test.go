package gather

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers share groups; every item runs exactly once, in a group
// of at most max, and the Group is idle afterwards.
func TestGroupRunsEveryItemOnce(t *testing.T) {
	const callers, size = 200, 16
	var (
		mu    sync.Mutex
		runs  = map[int]int{}
		sizes []int
	)
	g := New(size, time.Millisecond, func(_ context.Context, items []*int) {
		time.Sleep(200 * time.Microsecond) // a round trip
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(items))
		for _, it := range items {
			runs[*it]++
		}
	})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			if err := g.Do(t.Context(), &i); err != nil {
				t.Errorf("Do(%d): %v", i, err)
			}
		})
	}
	wg.Wait()
	for i := range callers {
		if runs[i] != 1 {
			t.Errorf("item %d ran %d times, want once", i, runs[i])
		}
	}
	if slices.Max(sizes) > size || len(sizes) >= callers {
		t.Errorf("group sizes %v: want at most %d and fewer groups than callers", sizes, size)
	}
	if g.Groups() != len(sizes) || !g.Idle() {
		t.Errorf("Groups() = %d (ran %d), idle %v; want equal and idle", g.Groups(), len(sizes), g.Idle())
	}
}

// Callers that give up (some of them just as they are handed the next
// group) never leave the others waiting; one that gave up gets ctx.Err().
func TestGroupCancelledCallersDoNotStall(t *testing.T) {
	var ran atomic.Int64
	g := New(8, 0, func(_ context.Context, items []*int) {
		time.Sleep(100 * time.Microsecond)
		ran.Add(int64(len(items)))
	})
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	var wg sync.WaitGroup
	var gaveUp atomic.Int64
	for i := range 300 {
		ctx := t.Context()
		if i%3 == 0 {
			ctx = cancelled
		}
		wg.Go(func() {
			switch err := g.Do(ctx, &i); {
			case err == nil:
			case ctx == cancelled && err == context.Canceled:
				gaveUp.Add(1)
			default:
				t.Errorf("Do(%d): %v", i, err)
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callers still waiting after 10 s")
	}
	if !g.Idle() {
		t.Error("a group running or callers pending after every caller returned")
	}
	t.Logf("%d items ran, %d callers gave up", ran.Load(), gaveUp.Load())
}

// Under steady load no caller runs other callers' groups for long: the
// leader runs one group and hands the next to a waiting caller.
func TestGroupHandsOver(t *testing.T) {
	g := New(4, 0, func(ctx context.Context, items []*int) {
		time.Sleep(100 * time.Microsecond) // a round trip
	})
	const load = 600 * time.Millisecond
	deadline := time.Now().Add(load)
	var longest atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				start := time.Now()
				if err := g.Do(t.Context(), &i); err != nil {
					t.Error(err)
					return
				}
				if d := int64(time.Since(start)); d > longest.Load() {
					longest.Store(d)
				}
			}
		})
	}
	wg.Wait()
	// A caller that kept leading while others arrived would be held for the
	// whole load.
	if d := time.Duration(longest.Load()); d > load/2 {
		t.Errorf("longest Do took %s under a %s load, want well under it", d, load)
	}
}
