package mq

import (
	"context"
	"sync"
	"time"
)

// backoff slows a whole subscription down while its handlers fail
// transiently (a database or service it needs is down): after each failure
// the next handler starts no sooner than 100 ms later, doubling up to 5 s;
// the first success ends it. Without it every message of the stream would
// be tried, fail and be sent to the retry topic during an outage; with it a
// few are, and the rest wait in the queues, where the group's lag shows the
// backlog growing and then draining.
type backoff struct {
	mu    sync.Mutex
	until time.Time
	step  time.Duration
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
)

func (b *backoff) failed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.step = min(max(2*b.step, minBackoff), maxBackoff)
	b.until = time.Now().Add(b.step)
}

func (b *backoff) succeeded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.step, b.until = 0, time.Time{}
}

// wait returns once the backoff is over, or ctx.Err() if ctx ends first.
func (b *backoff) wait(ctx context.Context) error {
	for {
		b.mu.Lock()
		d := time.Until(b.until)
		b.mu.Unlock()
		if d <= 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
