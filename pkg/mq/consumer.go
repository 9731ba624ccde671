package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"

	"seckill/pkg/config"
)

// ErrPermanent marks a poison message: one that retrying cannot fix
// (malformed, invalid, unknown tag or version). A handler error wrapping it is
// logged at Error with the body and counted; the message is redelivered
// PoisonRetries times (in case a deploy was half-way through), then moved
// straight to %DLQ%<group> for inspection, and the queue keeps flowing.
var ErrPermanent = errors.New("permanent failure")

// PoisonRetries is how many times a message is redelivered after its handler
// returned ErrPermanent before it goes to the DLQ. Transient errors use the
// group's MaxReconsumeTimes (16 by default, RocketMQ's retry schedule).
const PoisonRetries = 3

// Message is a consumed message.
type Message struct {
	// ID is the message ID the producer set (the UNIQ_KEY property):
	// Producer gives every message it sends one that is unique by
	// construction (msgid.go), kept when the message comes back through
	// %RETRY%<group>, so deduplicate on it. A message sent by another client
	// without one (client-go's batch members) gets OffsetID@StoreTimestamp:
	// the offset ID alone repeats when a broker's store starts again at the
	// same address; with the store time it does not, unless the broker's
	// clock went back.
	ID string
	// OffsetID is the broker's ID of this stored copy (broker address ‖
	// commit-log offset), for logs and broker tools; never deduplicate on it.
	OffsetID       string
	Topic, Tag     string
	Keys           string // space-separated, as stored by the broker
	Body           []byte
	QueueID        int
	QueueOffset    int64
	ReconsumeTimes int32 // 0 on first delivery
	BornAt         time.Time
}

// Handler handles one message. nil acks it; any error (or a panic)
// redelivers it later, and after MaxReconsumeTimes RocketMQ moves it to
// %DLQ%<group>; an error wrapping ErrPermanent gets PoisonRetries
// redeliveries instead.
type Handler func(ctx context.Context, m Message) error

// Model is the message model of a consumer group.
type Model int

const (
	// Clustering: each message goes to one consumer of the group.
	Clustering Model = iota
	// Broadcasting: each message goes to every consumer of the group. Failed
	// messages are dropped (RocketMQ has no retry for broadcasting) and
	// offsets are kept in a local file under $HOME/.rocketmq_client_go.
	Broadcasting
)

// TopicTag is one subscription: a topic and a tag expression ("a || b", "*").
type TopicTag struct{ Topic, Tag string }

// Subscription describes a consumer group.
type Subscription struct {
	Group   string
	Topics  []TopicTag
	Model   Model
	Orderly bool // one queue at a time, in queue order (clustering only)
	// Rate is the most messages per second this process hands to the handler
	// for the whole group; 0 = unlimited.
	Rate float64
	// MaxReconsumeTimes bounds the redeliveries of a transiently failing
	// message before the DLQ; 0 = 16 for concurrent groups and unlimited for
	// orderly ones (as the Java client: an ordered stream must not get a
	// hole because its database was down for a while).
	MaxReconsumeTimes int32
	InstanceName      string // prefix of the client instance name; empty: the group
	// Batch, when set, gets the messages of a concurrent (not orderly)
	// subscription that pass the throttle together (up to 32), before the
	// Handler does; see BatchHandler. Orderly subscriptions ignore it.
	Batch BatchHandler
}

// FromConfig builds a Subscription from a configured consumer group.
func FromConfig(g config.ConsumerGroup, rate float64) Subscription {
	s := Subscription{Group: g.GroupID, Orderly: g.Orderly, Rate: rate}
	if g.Model == config.ModelBroadcasting {
		s.Model = Broadcasting
	}
	for _, c := range g.Consumers {
		s.Topics = append(s.Topics, TopicTag{Topic: c.Topic, Tag: c.Tag})
	}
	return s
}

// Consumer is a running push consumer.
type Consumer struct {
	pc       rocketmq.PushConsumer
	cfg      Config
	sub      Subscription
	h        Handler
	log      *slog.Logger
	m        *Metrics
	throttle *bucket
	backoff  backoff
	batch    *gatherer // nil: every message goes to h alone
	// maxReconsume is the group's MaxReconsumeTimes as given to client-go.
	maxReconsume int32

	// handlerCtx is given to handlers; Close cancels it only when in-flight
	// handlers overrun closeTimeout.
	handlerCtx    context.Context
	cancelHandler context.CancelFunc
	// stopping ends throttle waits; released lets those goroutines return
	// once the consumer is shut down, so client-go cannot act on their result.
	stopping, released chan struct{}
	inflight           sync.WaitGroup
	mu                 sync.Mutex // guards closed and inflight.Add against Close
	closed             bool
	stopLag            context.CancelFunc
	lagStopped         chan struct{}
	closeOnce          sync.Once
	closeErr           error
}

// Client settings that keep the backlog in the broker, so the throttle, not
// client-side buffers, decides the drain rate, and a rebalance or shutdown
// leaves few pulled-but-unhandled messages behind.
const (
	pullBatchSize         = 16
	pullThresholdForQueue = 64
	consumeGoroutines     = 16
	closeTimeout          = 30 * time.Second
	ackGrace              = 200 * time.Millisecond
	lagInterval           = 5 * time.Second
	lagTimeout            = 3 * time.Second
	maxLoggedBody         = 2048
	orderlySuspend        = time.Second // pause of an orderly queue after a failed message
)

// Subscribe starts a push consumer for sub that hands every message to h.
// ctx is used while starting; stop the consumer with Close.
func Subscribe(ctx context.Context, cfg Config, sub Subscription, h Handler, log *slog.Logger, m *Metrics) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if sub.Group == "" || len(sub.Topics) == 0 {
		return nil, fmt.Errorf("subscribe %q: group and at least one topic required", sub.Group)
	}
	if sub.Orderly && sub.Model == Broadcasting {
		return nil, fmt.Errorf("subscribe %s: orderly needs clustering", sub.Group)
	}
	quietClientLog(log)
	model := consumer.Clustering // explicit: client-go's zero MessageModel is BROADCASTING
	if sub.Model == Broadcasting {
		model = consumer.BroadCasting
	}
	maxReconsume := sub.MaxReconsumeTimes
	switch {
	case maxReconsume > 0:
	case sub.Orderly:
		// Not -1 (client-go's "unlimited"): a finite maximum lets a poison
		// message be sent to the DLQ by raising its count past it (dlq),
		// with room for client-go's own +1 should that send-back fail.
		maxReconsume = math.MaxInt32 - 2
	default:
		maxReconsume = 16
	}
	maxReconsume = min(maxReconsume, math.MaxInt32-2) // dlq adds 1, client-go may add 1 more
	opts := []consumer.Option{
		consumer.WithNsResolver(cfg.resolver()),
		consumer.WithGroupName(sub.Group),
		consumer.WithInstance(instanceName(sub.InstanceName, sub.Group)),
		consumer.WithConsumerModel(model),
		consumer.WithConsumerOrder(sub.Orderly),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithMaxReconsumeTimes(maxReconsume),
		consumer.WithConsumeMessageBatchMaxSize(1),
		consumer.WithPullBatchSize(pullBatchSize),
		consumer.WithPullThresholdForQueue(pullThresholdForQueue),
		consumer.WithConsumeGoroutineNums(consumeGoroutines),
	}
	if cred, ok := cfg.credentials(); ok {
		opts = append(opts, consumer.WithCredentials(cred))
	}
	pc, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		return nil, fmt.Errorf("new consumer %s: %w", sub.Group, err)
	}
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c := &Consumer{
		pc: pc, cfg: cfg, sub: sub, h: h, log: log.With("group", sub.Group), m: m,
		throttle:      newBucket(sub.Rate),
		maxReconsume:  maxReconsume,
		handlerCtx:    hctx,
		cancelHandler: cancel,
		stopping:      make(chan struct{}),
		released:      make(chan struct{}),
		lagStopped:    make(chan struct{}),
	}
	if sub.Batch != nil && !sub.Orderly {
		c.batch = newGatherer(sub.Batch, c.log, m, sub.Group)
	}
	for _, t := range sub.Topics {
		tag := t.Tag
		if strings.TrimSpace(tag) == "" {
			tag = "*"
		}
		sel := consumer.MessageSelector{Type: consumer.TAG, Expression: tag}
		if err := pc.Subscribe(t.Topic, sel, c.consume); err != nil {
			cancel()
			_ = pc.Shutdown()
			return nil, fmt.Errorf("subscribe %s to %s: %w", sub.Group, t.Topic, err)
		}
	}
	if err := pc.Start(); err != nil {
		cancel()
		_ = pc.Shutdown()
		return nil, fmt.Errorf("start consumer %s: %w", sub.Group, err)
	}
	lagCtx, stopLag := context.WithCancel(context.WithoutCancel(ctx))
	c.stopLag = stopLag
	go c.pollLag(lagCtx)
	c.log.InfoContext(ctx, "consumer started", "topics", sub.Topics, "orderly", sub.Orderly,
		"broadcasting", sub.Model == Broadcasting, "rate", sub.Rate)
	return c, nil
}

// consume is the client-go callback. With ConsumeMessageBatchMaxSize 1 it
// gets one message; the loop only guards against a bigger batch.
func (c *Consumer) consume(ctx context.Context, msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
	retry := consumer.ConsumeRetryLater
	if c.sub.Orderly {
		retry = consumer.SuspendCurrentQueueAMoment
		// client-go's orderly context defaults to -1 ms, i.e. no pause at
		// all: a failing message would use up MaxReconsumeTimes in a few
		// milliseconds and go to the DLQ, leaving a hole in the ordered
		// stream. Pause like the Java client (1 s) instead.
		if oc, ok := primitive.GetOrderlyCtx(ctx); ok {
			oc.SuspendCurrentQueueTimeMillis = int(orderlySuspend / time.Millisecond)
		}
	}
	for _, me := range msgs {
		stop := stopCtx(c.stopping)
		err := c.backoff.wait(stop)
		if err == nil {
			err = c.throttle.take(stop)
		}
		if err != nil {
			// Closing: wait until the consumer is shut down (its process
			// queues dropped) so this result is ignored, not sent back.
			<-c.released
			return retry, nil
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			<-c.released
			return retry, nil
		}
		c.inflight.Add(1)
		c.mu.Unlock()
		d, transient := c.handle(me)
		c.inflight.Done()
		if transient {
			c.backoff.failed()
		} else {
			c.backoff.succeeded()
		}
		switch d {
		case redeliver:
			return retry, nil
		case deadLetter:
			c.dlq(ctx, me)
			return retry, nil
		}
	}
	return consumer.ConsumeSuccess, nil
}

// stopCtx is a context done when ch is closed (for bucket.take).
func stopCtx(ch <-chan struct{}) context.Context { return chanContext(ch) }

type chanContext <-chan struct{}

func (c chanContext) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c chanContext) Done() <-chan struct{}       { return c }
func (c chanContext) Value(any) any               { return nil }
func (c chanContext) Err() error {
	select {
	case <-c:
		return context.Canceled
	default:
		return nil
	}
}

// decision is what becomes of a handled message.
type decision int

const (
	ack        decision = iota
	redeliver           // later, through %RETRY%<group> (in place when orderly)
	deadLetter          // straight to %DLQ%<group>
)

// dlq makes client-go send me to the DLQ instead of retrying it: delay level
// -1 for a concurrent group (the broker dead-letters a send-back with a
// negative level), and a reconsume count past the maximum for an orderly one.
func (c *Consumer) dlq(ctx context.Context, me *primitive.MessageExt) {
	if c.sub.Orderly {
		me.ReconsumeTimes = c.maxReconsume + 1
		return
	}
	if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok {
		cc.DelayLevelWhenNextConsume = -1
	}
}

// handle runs the handler for one message and makes the ack/retry decision,
// the only one in the system.
//
// transient reports a failure that is not the message's fault (an error
// other than ErrPermanent, or a panic): the subscription backs off.
func (c *Consumer) handle(me *primitive.MessageExt) (d decision, transient bool) {
	msg := toMessage(me)
	start := time.Now()
	var err error
	if c.batch == nil || !c.batch.do(c.handlerCtx, msg) {
		err = c.call(msg)
	}
	elapsed := time.Since(start)
	c.m.observe(c.sub.Group, elapsed.Seconds())

	var result string
	level := slog.LevelInfo
	var panicked *panicError
	switch {
	case err == nil:
		result, d = resultOK, ack
	case errors.As(err, &panicked):
		result, d, level, transient = resultPanic, redeliver, slog.LevelError, true
	case errors.Is(err, ErrPermanent) && msg.ReconsumeTimes >= PoisonRetries:
		result, d, level = resultDead, deadLetter, slog.LevelError
	case errors.Is(err, ErrPermanent):
		result, d, level = resultPermanent, redeliver, slog.LevelError
	default:
		result, d, level, transient = resultRetry, redeliver, slog.LevelWarn, true
	}
	c.m.consumedInc(c.sub.Group, msg.Topic, result)
	attrs := []slog.Attr{
		slog.String("msg_id", msg.ID),
		slog.String("offset_msg_id", msg.OffsetID),
		slog.String("topic", msg.Topic),
		slog.String("tag", msg.Tag),
		slog.String("keys", msg.Keys),
		slog.Int("queue", msg.QueueID),
		slog.Int64("queue_offset", msg.QueueOffset),
		slog.Int("reconsume", int(msg.ReconsumeTimes)),
		slog.String("result", result),
		slog.Int64("duration_ms", elapsed.Milliseconds()),
	}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	if level == slog.LevelError {
		attrs = append(attrs, slog.String("body", truncate(msg.Body, maxLoggedBody)))
	}
	if panicked != nil {
		attrs = append(attrs, slog.String("stack", panicked.stack))
	}
	c.log.LogAttrs(c.handlerCtx, level, "message consumed", attrs...)
	return d, transient
}

type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprintf("handler panic: %v", p.value) }

func (c *Consumer) call(msg Message) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: string(debug.Stack())}
		}
	}()
	return c.h(c.handlerCtx, msg)
}

func toMessage(me *primitive.MessageExt) Message {
	m := Message{
		ID:             me.GetProperty(propUniqKey),
		OffsetID:       me.OffsetMsgId,
		Topic:          me.Topic,
		Tag:            me.GetTags(),
		Keys:           me.GetKeys(),
		Body:           me.Body,
		QueueOffset:    me.QueueOffset,
		ReconsumeTimes: me.ReconsumeTimes,
		BornAt:         time.UnixMilli(me.BornTimestamp),
	}
	if m.ID == "" {
		m.ID = m.OffsetID + "@" + strconv.FormatInt(me.StoreTimestamp, 10)
	}
	if me.Queue != nil {
		m.QueueID = me.Queue.QueueId
	}
	return m
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "...(truncated)"
}

// pollLag sets the group's lag gauge from the brokers every lagInterval,
// starting at once, until ctx is done. A failed poll keeps the last value.
// Broadcasting groups keep their offsets in each client, so the brokers know
// no lag for them and the gauge is never set.
func (c *Consumer) pollLag(ctx context.Context) {
	defer close(c.lagStopped)
	if c.sub.Model == Broadcasting || c.m == nil {
		return
	}
	// Messages waiting for a retry are backlog too: once their delay is
	// over they sit in the group's retry topic.
	topics := []string{RetryTopic(c.sub.Group)}
	for _, t := range c.sub.Topics {
		if !slices.Contains(topics, t.Topic) {
			topics = append(topics, t.Topic)
		}
	}
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, lagTimeout)
		lag, err := groupLag(pctx, c.cfg, c.sub.Group, topics)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			c.log.LogAttrs(ctx, slog.LevelDebug, "consumer lag not refreshed", slog.String("err", err.Error()))
		default:
			c.m.setLag(c.sub.Group, lag)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Group is the consumer group's name.
func (c *Consumer) Group() string { return c.sub.Group }

// Running reports whether the consumer is started and Close has not begun
// (the readiness check of a service's consumers).
func (c *Consumer) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed
}

// Close stops intake, waits for in-flight handlers (up to 30 s, then cancels
// their context and waits for them to return), and shuts the consumer down,
// which persists the offsets of acked messages. Messages pulled but not yet
// handled are redelivered to whoever consumes the queue next.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.pc.Suspend()
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.stopping)
		c.stopLag()
		done := make(chan struct{})
		go func() { c.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(closeTimeout):
			c.log.Warn("handlers still running at close, cancelling them")
			c.cancelHandler()
			<-done
		}
		// client-go records an ack (offset update in memory) right after
		// our callback returns, in its own goroutine, with no way to wait
		// for it: give it a moment so Shutdown persists those offsets too.
		time.Sleep(ackGrace)
		// Callbacks that began after intake stopped (they wait on released)
		// have passed through mu: taking it orders what client-go did before
		// handing them over — putting the pulled messages on the process
		// queue's channel — before Shutdown closes that channel, which
		// client-go itself does not order (the race detector reports it).
		c.mu.Lock()
		//lint:ignore SA2001 an empty critical section on purpose: see above
		c.mu.Unlock()
		if err := c.pc.Shutdown(); err != nil {
			c.closeErr = fmt.Errorf("shutdown consumer %s: %w", c.sub.Group, err)
		}
		close(c.released)
		c.cancelHandler()
		<-c.lagStopped // a poll finishing now must not set the gauge again
		c.m.deleteLag(c.sub.Group)
		c.log.Info("consumer closed")
	})
	return c.closeErr
}
