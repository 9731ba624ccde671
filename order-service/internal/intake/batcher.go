package intake

import (
	"context"
	"fmt"
	"time"

	"seckill/order-service/internal/outbox"
	"seckill/order-service/internal/stock"
	"seckill/pkg/mq"
)

// Batcher is the group commit of batch mode: request handlers enqueue their
// reservation and wait; one flusher hands up to Max of them (or what arrived
// within Wait) on together (outbox.Handoff: one batch send of the created
// events, one pay timeout) and answers every waiter with the result.
type Batcher struct {
	producer     *mq.Producer
	queue        chan batchItem
	max          int
	wait         time.Duration
	timeoutLevel int
}

type batchItem struct {
	r    stock.Reservation
	done chan error
}

// NewBatcher returns a Batcher; run it with Run. timeoutLevel is the delay
// level of the pay timeouts.
func NewBatcher(producer *mq.Producer, max int, wait time.Duration, timeoutLevel int) *Batcher {
	return &Batcher{producer: producer, queue: make(chan batchItem, 4*max), max: max, wait: wait, timeoutLevel: timeoutLevel}
}

// Send enqueues r and waits until its batch was acked by the broker.
func (b *Batcher) Send(ctx context.Context, r stock.Reservation) error {
	it := batchItem{r: r, done: make(chan error, 1)}
	select {
	case b.queue <- it:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-it.done:
		return err
	case <-ctx.Done():
		// The batch may still be sent; the caller answers an error and the
		// client's retry with its Idempotency-Key sends the order again.
		return ctx.Err()
	}
}

// Run flushes batches until ctx is done, then flushes what is queued and
// returns. Stop intake (HTTP) before cancelling ctx.
func (b *Batcher) Run(ctx context.Context) error {
	sendCtx := context.WithoutCancel(ctx)
	for {
		var first batchItem
		select {
		case first = <-b.queue:
		case <-ctx.Done():
			for {
				select {
				case it := <-b.queue:
					b.flush(sendCtx, b.collect(it, 0))
				default:
					return nil
				}
			}
		}
		b.flush(sendCtx, b.collect(first, b.wait))
	}
}

func (b *Batcher) collect(first batchItem, wait time.Duration) []batchItem {
	items := []batchItem{first}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for len(items) < b.max {
		select {
		case it := <-b.queue:
			items = append(items, it)
		case <-timer.C:
			return items
		}
	}
	return items
}

func (b *Batcher) flush(ctx context.Context, items []batchItem) {
	rs := make([]stock.Reservation, len(items))
	for i, it := range items {
		rs[i] = it.r
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := outbox.Handoff(ctx, b.producer, rs, b.timeoutLevel)
	if err != nil {
		err = fmt.Errorf("hand off batch of %d: %w", len(rs), err)
	}
	for _, it := range items {
		it.done <- err
	}
}
