package payment

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Notifier publishes OrderPaid without making the payer wait: an async send
// whose callback retries with exponential backoff and logs at Error when it
// gives up.
//
// Losing a paid event is safe, only slower for the buyer: order-service never
// confirms the order, its pay timeout closes it, and the closed event refunds
// this payment (paid -> refunded). Paying again re-sends the event.
type Notifier struct {
	producer *mq.Producer
	log      *slog.Logger
	attempts int
	backoff  time.Duration

	wg        sync.WaitGroup // one per Paid call until it is sent or given up
	stop      chan struct{}  // closed by Close: retries go out at once
	closeOnce sync.Once
}

// NewNotifier sends through producer, trying each event up to attempts times,
// waiting backoff, 2*backoff, 4*backoff... between tries.
func NewNotifier(producer *mq.Producer, log *slog.Logger, attempts int, backoff time.Duration) *Notifier {
	return &Notifier{producer: producer, log: log, attempts: max(attempts, 1), backoff: backoff, stop: make(chan struct{})}
}

// Paid sends the OrderPaid event of p (status paid) in the background. The
// send outlives ctx's cancellation (the HTTP request ends first) but keeps its
// values. It must not be called after Close.
func (n *Notifier) Paid(ctx context.Context, p Payment) {
	body, err := json.Marshal(events.OrderPaid{
		Version:     events.Version,
		EventID:     events.EventID(p.OrderID, events.TagPaid),
		OrderID:     p.OrderID,
		AmountCents: p.AmountCents,
		PaidAt:      p.UpdatedAt.UTC(),
	})
	if err != nil {
		panic(fmt.Sprintf("marshal OrderPaid: %v", err)) // plain struct: cannot fail
	}
	msg := mq.Outgoing{
		Topic:       events.TopicOrder,
		Tag:         events.TagPaid,
		Keys:        []string{p.OrderID},
		ShardingKey: p.OrderID, // same queue as the order's other events
		Body:        body,
	}
	n.wg.Add(1)
	n.send(context.WithoutCancel(ctx), p.OrderID, msg, 1)
}

func (n *Notifier) send(ctx context.Context, orderID string, msg mq.Outgoing, attempt int) {
	err := n.producer.SendAsync(ctx, msg, func(res mq.SendResult, err error) {
		n.sent(ctx, orderID, msg, attempt, res, err)
	})
	if err != nil {
		n.sent(ctx, orderID, msg, attempt, mq.SendResult{}, err)
	}
}

// sent handles the outcome of one attempt; it runs on the client's callback
// goroutine, so it never blocks: a retry waits on its own goroutine, owned by
// n.wg and stopped by Close.
func (n *Notifier) sent(ctx context.Context, orderID string, msg mq.Outgoing, attempt int, res mq.SendResult, err error) {
	log := n.log.With("order_id", orderID, "event_id", events.EventID(orderID, events.TagPaid), "attempt", attempt)
	if err == nil {
		log.InfoContext(ctx, "paid event sent", "msg_id", res.MsgID)
		n.wg.Done()
		return
	}
	if attempt >= n.attempts {
		log.ErrorContext(ctx, "paid event lost: the order will time out and this payment be refunded", "err", err)
		n.wg.Done()
		return
	}
	delay := n.backoff << (attempt - 1)
	log.WarnContext(ctx, "paid event not sent, retrying", "err", err, "retry_in_ms", delay.Milliseconds())
	go func() {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			n.send(ctx, orderID, msg, attempt+1)
		case <-n.stop:
			// Shutting down: one last try now instead of waiting.
			n.send(ctx, orderID, msg, n.attempts)
		}
	}()
}

// Close makes pending retries go out at once and waits until every event is
// sent or given up, or ctx is done. Call it after the HTTP server stopped and
// before the producer closes.
func (n *Notifier) Close(ctx context.Context) error {
	n.closeOnce.Do(func() { close(n.stop) })
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for paid events: %w", ctx.Err())
	}
}
