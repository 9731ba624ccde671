package mq

import (
	"context"
	"math"
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens per second, at most burst stored.
// Take blocks until a token is available, so over any window of length T a
// subscription starts at most rate*T + burst handlers. client-go's own
// WithConsumeTPS/WithLimiter run per topic and before queue dispatch; this
// one is per subscription and sits right before the handler.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second; <= 0 means unlimited
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64) *bucket {
	if rate <= 0 {
		return &bucket{}
	}
	// A small burst: enough to absorb scheduling jitter, small enough that a
	// backlog cannot push the rate above target for more than a moment.
	burst := math.Max(1, math.Floor(rate/20))
	return &bucket{rate: rate, burst: burst, tokens: 1, last: time.Now()}
}

// throttleTick quantizes wake-ups: waiters whose turn falls within the same
// tick wake together at its end, so a throttled group's handlers run side by
// side (at 200 msg/s, ten every 50 ms) and can share a database commit
// (db.Group) instead of each paying for its own. The rate is unchanged; a
// message waits at most one tick longer.
const throttleTick = 50 * time.Millisecond

// take waits for a token; it returns ctx.Err() if ctx ends first. Tokens
// are reserved in arrival order (the balance may go negative), so waiters
// sleep until their turn (rounded up to the next tick) instead of all waking
// on every token.
func (b *bucket) take(ctx context.Context) error {
	if b.rate <= 0 {
		return nil
	}
	b.mu.Lock()
	now := time.Now()
	b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	b.last = now
	b.tokens--
	wait := time.Duration(-b.tokens / b.rate * float64(time.Second))
	b.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	at := now.Add(wait).Truncate(throttleTick).Add(throttleTick)
	wait = at.Sub(now)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		b.mu.Lock()
		b.tokens++ // give the reservation back
		b.mu.Unlock()
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
