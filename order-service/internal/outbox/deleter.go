package outbox

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/gather"
)

// Deleter deletes outbox entries whose order the intake handed on itself
// (batch and sync modes). The deletes of concurrent requests go to Redis as
// one XDEL.
type Deleter struct {
	rdb    redis.UniversalClient
	stream string
	group  *gather.Group[*deletion]
}

type deletion struct {
	id  string
	err error
}

// maxDelete bounds the entries of one XDEL.
const maxDelete = 256

// NewDeleter returns a Deleter of stream ("" = events.OutboxStream).
func NewDeleter(rdb redis.UniversalClient, stream string) *Deleter {
	if stream == "" {
		stream = events.OutboxStream
	}
	d := &Deleter{rdb: rdb, stream: stream}
	d.group = gather.New(maxDelete, 0, d.exec)
	return d
}

// Delete deletes the entry id. An entry left behind (an error) is sent again
// by the sender's sweep: consumers deduplicate on the event ID.
func (d *Deleter) Delete(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	x := &deletion{id: id}
	if err := d.group.Do(ctx, x); err != nil {
		return fmt.Errorf("delete outbox entry %s: %w", id, err)
	}
	return x.err
}

func (d *Deleter) exec(ctx context.Context, xs []*deletion) {
	ids := make([]string, len(xs))
	for i, x := range xs {
		ids[i] = x.id
	}
	err := d.rdb.XDel(ctx, d.stream, ids...).Err()
	if err != nil {
		err = fmt.Errorf("delete %d outbox entries: %w", len(ids), err)
	}
	for _, x := range xs {
		x.err = err
	}
}
