package stock

import (
	"context"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Backlog is what the reserve consumer group (GID-inventory) still has to
// consume of the order events the broker holds.
type Backlog struct {
	cfg   mq.Config
	group string
}

// NewBacklog returns the Backlog of group in the brokers cfg names.
func NewBacklog(cfg mq.Config, group string) *Backlog {
	return &Backlog{cfg: cfg, group: group}
}

// Snapshot records the end of every queue of ORDER and of the group's retry
// topic: every created event stored so far is below it.
func (b *Backlog) Snapshot(ctx context.Context) (mq.Snapshot, error) {
	return mq.TakeSnapshot(ctx, b.cfg, events.TopicOrder, mq.RetryTopic(b.group))
}

// Behind is how many messages below snap the group has not consumed and
// committed yet (see mq.Behind).
func (b *Backlog) Behind(ctx context.Context, snap mq.Snapshot) (int64, error) {
	return mq.Behind(ctx, b.cfg, b.group, snap)
}
