package mq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Request codes of the broker's offset API.
const (
	codeQueryConsumerOffset = 14
	codeGetMaxOffset        = 30
	codeGetMinOffset        = 31
)

// groupLag is the backlog of a clustering group in the brokers: over every
// readable queue of every topic, the queue's max offset minus the group's
// committed offset, summed (the "diff" of mqadmin consumerProgress). A queue
// the group never committed on counts from its oldest retained message, as a
// group consuming from the first offset would start there.
//
// It asks the name servers for each topic's route and then holds one
// connection per broker for all of its queues; a topic that does not exist
// (yet: %RETRY%<group> before the first retry) has no backlog. client-go's own figure
// (PushConsumer.GetOffsetDiffMap) covers only the queues this process holds
// and reads them unsynchronized while its pull loop writes them.
func groupLag(ctx context.Context, cfg Config, group string, topics []string) (int64, error) {
	var lag int64
	err := forEachQueue(ctx, cfg, topics, func(c *remotingConn, topic string, id int) error {
		d, err := queueLag(c, group, topic, id)
		if err != nil {
			return fmt.Errorf("lag of %s on %s queue %d: %w", group, topic, id, err)
		}
		lag += d
		return nil
	})
	return lag, err
}

func queueLag(c *remotingConn, group, topic string, queueID int) (int64, error) {
	q := map[string]string{"topic": topic, "queueId": strconv.Itoa(queueID)}
	maxOff, err := offsetCall(c, codeGetMaxOffset, q)
	if err != nil {
		return 0, fmt.Errorf("max offset: %w", err)
	}
	committed, err := offsetCall(c, codeQueryConsumerOffset,
		map[string]string{"consumerGroup": group, "topic": topic, "queueId": q["queueId"]})
	var re *remotingError
	if errors.As(err, &re) && re.Code == codeQueryNotFound {
		committed, err = offsetCall(c, codeGetMinOffset, q)
	}
	if err != nil {
		return 0, fmt.Errorf("consumer offset: %w", err)
	}
	return max(maxOff-committed, 0), nil
}

// offsetCall sends an offset request and returns the "offset" ext field of
// the answer.
func offsetCall(c *remotingConn, code int, ext map[string]string) (int64, error) {
	resp, _, err := c.call(code, ext)
	if err != nil {
		return 0, err
	}
	off, err := strconv.ParseInt(resp.ExtFields["offset"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("offset %q from %s: %w", resp.ExtFields["offset"], c.addr, err)
	}
	return off, nil
}
