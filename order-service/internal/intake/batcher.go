package intake

import (
	"context"
	"fmt"
	"time"

	"seckill/pkg/mq"
)

// Batcher is the group commit of batch mode: request handlers enqueue their
// created message and wait; one flusher sends up to Max messages (or what
// arrived within Wait) as one SendBatch and answers every waiter with its result.
type Batcher struct {
	producer *mq.Producer
	queue    chan batchItem
	max      int
	wait     time.Duration
}

type batchItem struct {
	msg  mq.Outgoing
	done chan error
}

// NewBatcher returns a Batcher; run it with Run.
func NewBatcher(producer *mq.Producer, max int, wait time.Duration) *Batcher {
	return &Batcher{producer: producer, queue: make(chan batchItem, 4*max), max: max, wait: wait}
}

// Send enqueues msg and waits until its batch was acked by the broker.
func (b *Batcher) Send(ctx context.Context, msg mq.Outgoing) error {
	it := batchItem{msg: msg, done: make(chan error, 1)}
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
	msgs := make([]mq.Outgoing, len(items))
	for i, it := range items {
		msgs[i] = it.msg
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := b.producer.SendBatch(ctx, msgs)
	if err != nil {
		err = fmt.Errorf("send batch of %d: %w", len(msgs), err)
	}
	for _, it := range items {
		it.done <- err
	}
}
