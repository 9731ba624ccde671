package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"seckill/pkg/gather"
)

// BatchHandler handles several messages of a group at once, all or nothing.
// The messages of one call share their tag and are all first deliveries or
// all redeliveries. nil means every message is handled (each is acked as if
// its Handler had returned nil); an error means none is (the batch's writes
// are rolled back), and each message is then given to the group's Handler
// alone, which decides its ack, retry or dead letter as usual. A batch is
// only a cheaper way to the same result, so the Handler alone must reach it
// too.
//
// Return ErrNoBatch, with no side effects, for a set the batch path does not
// take (another tag, a redelivery): the messages go to the Handler at once.
type BatchHandler func(ctx context.Context, ms []Message) error

// ErrNoBatch is returned by a BatchHandler for messages it leaves to the
// Handler.
var ErrNoBatch = errors.New("not handled as a batch")

// Deliveries that pass the throttle together are gathered into one batch of
// up to batchMax, waiting batchLinger for the others: the throttle wakes a
// group's waiters together on its ticks (ten every 50 ms at 200 msg/s).
const (
	batchMax    = 32
	batchLinger = 2 * time.Millisecond
)

// gatherer hands concurrent deliveries of a concurrent (not orderly)
// subscription to its BatchHandler together, through a gather.Group (no
// goroutine of its own, like db.Group).
type gatherer struct {
	fn    BatchHandler
	log   *slog.Logger
	m     *Metrics
	name  string // the consumer group, for the metrics
	group *gather.Group[*batchCall]
}

type batchCall struct {
	msg     Message
	batched bool // handled by the batch
}

func newGatherer(fn BatchHandler, log *slog.Logger, m *Metrics, group string) *gatherer {
	g := &gatherer{fn: fn, log: log, m: m, name: group}
	g.group = gather.New(batchMax, batchLinger, g.runAll)
	return g
}

// do reports whether msg was handled as part of a batch; false means the
// caller handles it alone.
func (g *gatherer) do(ctx context.Context, msg Message) bool {
	c := &batchCall{msg: msg}
	// ctx is the handlers' context, cancelled only when a shutdown overruns:
	// then the message is handled alone (or not at all) like any other.
	return g.group.Do(ctx, c) == nil && c.batched
}

func (g *gatherer) runAll(ctx context.Context, batch []*batchCall) {
	for _, part := range partition(batch) {
		ok := len(part) > 1 && g.run(ctx, part)
		for _, c := range part {
			c.batched = ok
		}
	}
}

// partition splits a gathered batch by tag and into first deliveries and
// redeliveries, keeping arrival order within each part: a group's topic
// carries several kinds of events (created, paid, closed...), and a batch
// handler takes one kind of first delivery, so a closed event among created
// ones leaves the created ones batched instead of sending all one by one.
func partition(batch []*batchCall) [][]*batchCall {
	type kind struct {
		tag         string
		redelivered bool
	}
	var kinds []kind
	parts := map[kind][]*batchCall{}
	for _, c := range batch {
		k := kind{c.msg.Tag, c.msg.ReconsumeTimes > 0}
		if _, ok := parts[k]; !ok {
			kinds = append(kinds, k)
		}
		parts[k] = append(parts[k], c)
	}
	out := make([][]*batchCall, len(kinds))
	for i, k := range kinds {
		out[i] = parts[k]
	}
	return out
}

func (g *gatherer) run(ctx context.Context, batch []*batchCall) bool {
	ms := make([]Message, len(batch))
	for i, c := range batch {
		ms[i] = c.msg
	}
	err := g.call(ctx, ms)
	switch {
	case err == nil:
		g.m.batchedAdd(g.name, ms[0].Tag, true, len(ms))
		return true
	case errors.Is(err, ErrNoBatch):
	default:
		// Each message now goes to its Handler, which logs what is wrong.
		g.log.InfoContext(ctx, "batch not handled; handling its messages one by one",
			"messages", len(ms), "first_msg_id", ms[0].ID, "err", err)
		g.m.batchedAdd(g.name, ms[0].Tag, false, len(ms))
	}
	return false
}

func (g *gatherer) call(ctx context.Context, ms []Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("batch handler panic: %v\n%s", v, debug.Stack())
		}
	}()
	return g.fn(ctx, ms)
}

// Events decodes the messages of one handler call, a single message (a
// Handler) or a batch (a BatchHandler), for one kind of event: every message
// must carry tag. A single message that does not, or does not decode, is
// permanent (the error wraps ErrPermanent). In a batch every message must
// also be a first delivery and no two may share a message ID, an event ID
// or an order ID (such a batch would fail its claim or insert after the
// round trips, where the Handler tells the cases apart without one); any of
// that is ErrNoBatch, and the Handler decides each message. It returns the
// events in message order, the keys to claim (each message ID and event ID)
// and the order IDs.
func Events[E any](ms []Message, tag string, decode func([]byte) (E, error),
	ids func(*E) (eventID, orderID string)) (evs []E, claimKeys, orderIDs []string, err error) {
	single := len(ms) == 1
	evs = make([]E, len(ms))
	claimKeys = make([]string, 0, 2*len(ms))
	orderIDs = make([]string, len(ms))
	seen := make(map[string]bool, 3*len(ms))
	for i, m := range ms {
		switch {
		case m.Tag != tag && single:
			return nil, nil, nil, fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, ErrPermanent)
		case m.Tag != tag || (!single && m.ReconsumeTimes > 0):
			return nil, nil, nil, ErrNoBatch
		}
		ev, err := decode(m.Body)
		if err != nil {
			if single {
				return nil, nil, nil, fmt.Errorf("message %s (%s): %w: %w", m.ID, m.Tag, ErrPermanent, err)
			}
			return nil, nil, nil, ErrNoBatch
		}
		eventID, orderID := ids(&ev)
		for _, k := range []string{"msg:" + m.ID, "event:" + eventID, "order:" + orderID} {
			if seen[k] {
				return nil, nil, nil, ErrNoBatch
			}
			seen[k] = true
		}
		evs[i], orderIDs[i] = ev, orderID
		claimKeys = append(claimKeys, m.ID, eventID)
	}
	return evs, claimKeys, orderIDs, nil
}
