package dedup

import (
	"context"
	"errors"

	"seckill/pkg/mq"
)

// ApplyOne runs apply — a handler's one decision over a set of messages in
// one transaction — for a message alone, as its mq.Handler does: when the
// message was applied before (apply's error wraps ErrSeen: a redelivery, or
// a producer's re-send under the same business key) it is acked, after
// seen(ctx, m) has logged or counted it; any other error is apply's.
func ApplyOne(ctx context.Context, m mq.Message, apply func(context.Context, []mq.Message) error, seen func(context.Context, mq.Message)) error {
	err := apply(ctx, []mq.Message{m})
	if errors.Is(err, ErrSeen) {
		seen(ctx, m)
		return nil
	}
	return err
}
