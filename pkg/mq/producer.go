package mq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// ErrDelayInBatch: RocketMQ silently ignores the delay level of batch
// members, so SendBatch refuses them; send delayed messages one by one.
var ErrDelayInBatch = errors.New("delayed message in a batch")

// Outgoing is a message to send.
type Outgoing struct {
	Topic, Tag string
	Keys       []string // indexed by the broker; the first is logged
	// ShardingKey != "": queue = hash(key) % queues, so messages with one key
	// keep their order (partial order).
	ShardingKey string
	DelayLevel  int // 1..18 (see DelayDuration); 0 = deliver now
	Body        []byte
}

// SendResult is what the broker answered.
type SendResult struct {
	MsgID, OffsetMsgID string
	QueueID            int
	QueueOffset        int64
}

// Producer sends messages. It is safe for concurrent use.
type Producer struct {
	p     rocketmq.Producer
	sel   *selector
	group string
	log   *slog.Logger
	m     *Metrics
}

// NewProducer starts a producer in group (producer groups only matter for
// transactions and broker-side statistics).
func NewProducer(ctx context.Context, cfg Config, group string, log *slog.Logger, m *Metrics) (*Producer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	quietClientLog(log)
	sel := &selector{}
	opts := []producer.Option{
		producer.WithNsResolver(cfg.resolver()),
		producer.WithGroupName(group),
		producer.WithInstanceName(instanceName(cfg.InstanceName, group)),
		producer.WithQueueSelector(sel),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(3 * time.Second),
	}
	if cred, ok := cfg.credentials(); ok {
		opts = append(opts, producer.WithCredentials(cred))
	}
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		return nil, fmt.Errorf("new producer %s: %w", group, err)
	}
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("start producer %s: %w", group, err)
	}
	log.InfoContext(ctx, "producer started", "group", group, "name_servers", cfg.NameServers)
	return &Producer{p: p, sel: sel, group: group, log: log, m: m}, nil
}

// message builds the client-go message with a new producer-controlled
// message ID (msgid.go): client-go's own retries of this send reuse it, so a
// message stored twice after a lost acknowledgement has one ID.
func (o Outgoing) message() *primitive.Message {
	msg := primitive.NewMessage(o.Topic, o.Body)
	msg.WithProperty(propUniqKey, uniqIDs.next())
	if o.Tag != "" {
		msg.WithTag(o.Tag)
	}
	if len(o.Keys) > 0 {
		msg.WithKeys(o.Keys)
	}
	if o.ShardingKey != "" {
		msg.WithShardingKey(o.ShardingKey)
	}
	if o.DelayLevel > 0 {
		msg.WithDelayTimeLevel(o.DelayLevel)
	}
	return msg
}

func (o Outgoing) check() error {
	if o.Topic == "" {
		return errors.New("message without topic")
	}
	if o.DelayLevel < 0 || o.DelayLevel > MaxDelayLevel {
		return fmt.Errorf("delay level %d out of range 0..%d", o.DelayLevel, MaxDelayLevel)
	}
	return nil
}

func firstKey(keys []string) string {
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

func result(r *primitive.SendResult) SendResult {
	if r == nil {
		return SendResult{}
	}
	out := SendResult{MsgID: r.MsgID, OffsetMsgID: r.OffsetMsgID, QueueOffset: r.QueueOffset}
	if r.MessageQueue != nil {
		out.QueueID = r.MessageQueue.QueueId
	}
	return out
}

// sendErr turns a non-OK broker status into an error (client-go returns
// FLUSH_*_TIMEOUT and SLAVE_NOT_AVAILABLE as results, not errors).
func sendErr(r *primitive.SendResult, err error) error {
	if err != nil {
		return err
	}
	if r == nil {
		return errors.New("no send result")
	}
	if r.Status != primitive.SendOK {
		return fmt.Errorf("send status %d", r.Status)
	}
	return nil
}

// SendSync sends m and waits for the broker to store it.
func (p *Producer) SendSync(ctx context.Context, m Outgoing) (SendResult, error) {
	if err := m.check(); err != nil {
		return SendResult{}, fmt.Errorf("send %s/%s: %w", m.Topic, m.Tag, err)
	}
	start := time.Now()
	r, err := p.p.SendSync(ctx, m.message())
	err = sendErr(r, err)
	p.m.sentAdd(m.Topic, "sync", err, 1)
	if err != nil {
		return SendResult{}, fmt.Errorf("send %s/%s key %s: %w", m.Topic, m.Tag, firstKey(m.Keys), err)
	}
	res := result(r)
	p.log.DebugContext(ctx, "message sent", "mode", "sync", "topic", m.Topic, "tag", m.Tag,
		"keys", firstKey(m.Keys), "msg_id", res.MsgID, "queue", res.QueueID,
		"duration_ms", time.Since(start).Milliseconds())
	return res, nil
}

// SendAsync sends m without waiting; done is called once with the outcome
// (from a client-go goroutine). An error returned here means done will not
// be called.
func (p *Producer) SendAsync(ctx context.Context, m Outgoing, done func(SendResult, error)) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("send async %s/%s: %w", m.Topic, m.Tag, err)
	}
	err := p.p.SendAsync(ctx, func(_ context.Context, r *primitive.SendResult, err error) {
		err = sendErr(r, err)
		p.m.sentAdd(m.Topic, "async", err, 1)
		if err != nil {
			done(SendResult{}, fmt.Errorf("send async %s/%s key %s: %w", m.Topic, m.Tag, firstKey(m.Keys), err))
			return
		}
		done(result(r), nil)
	}, m.message())
	if err != nil {
		p.m.sentAdd(m.Topic, "async", err, 1)
		return fmt.Errorf("send async %s/%s key %s: %w", m.Topic, m.Tag, firstKey(m.Keys), err)
	}
	return nil
}

// SendOneWay sends m without any acknowledgement: it may be lost.
func (p *Producer) SendOneWay(ctx context.Context, m Outgoing) error {
	if err := m.check(); err != nil {
		return fmt.Errorf("send oneway %s/%s: %w", m.Topic, m.Tag, err)
	}
	err := p.p.SendOneWay(ctx, m.message())
	p.m.sentAdd(m.Topic, "oneway", err, 1)
	if err != nil {
		return fmt.Errorf("send oneway %s/%s: %w", m.Topic, m.Tag, err)
	}
	return nil
}

// SendBatch sends ms as few synchronous batch sends as possible: one per
// topic and queue. Messages with a sharding key go to the key's queue (the
// same one SendSync would pick), in their order in ms; the rest are spread
// round-robin. Any DelayLevel > 0 fails the whole call with ErrDelayInBatch
// before anything is sent. On error some groups may have been sent already;
// resending all of ms is safe only for idempotent consumers.
func (p *Producer) SendBatch(ctx context.Context, ms []Outgoing) error {
	for i, m := range ms {
		if m.DelayLevel > 0 {
			return fmt.Errorf("batch message %d (%s/%s): %w", i, m.Topic, m.Tag, ErrDelayInBatch)
		}
		if err := m.check(); err != nil {
			return fmt.Errorf("batch message %d: %w", i, err)
		}
	}
	type groupKey struct {
		topic  string
		broker string
		queue  int
	}
	var (
		order  []groupKey
		groups = map[groupKey][]*primitive.Message{}
		rr     = map[string]int{}
	)
	for _, m := range ms {
		queues := p.sel.knownQueues(m.Topic)
		if queues == nil {
			// The queue list is learnt from the first send of a topic: send
			// this one alone, then group the rest.
			if _, err := p.sendGroup(ctx, m.Topic, []*primitive.Message{m.message()}); err != nil {
				return err
			}
			continue
		}
		var q *primitive.MessageQueue
		if m.ShardingKey != "" {
			q = queues[shard(m.ShardingKey, len(queues))]
		} else {
			q = queues[rr[m.Topic]%len(queues)]
			rr[m.Topic]++
		}
		k := groupKey{m.Topic, q.BrokerName, q.QueueId}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		msg := m.message()
		msg.Queue = &primitive.MessageQueue{Topic: q.Topic, BrokerName: q.BrokerName, QueueId: q.QueueId}
		groups[k] = append(groups[k], msg)
	}
	for _, k := range order {
		if _, err := p.sendGroup(ctx, k.topic, groups[k]); err != nil {
			return err
		}
	}
	return nil
}

// maxBatchBytes keeps a batch well under the broker's 4 MiB message limit.
const maxBatchBytes = 1 << 20

func (p *Producer) sendGroup(ctx context.Context, topic string, msgs []*primitive.Message) (SendResult, error) {
	var last SendResult
	for len(msgs) > 0 {
		n, size := 0, 0
		for n < len(msgs) && (n == 0 || size+len(msgs[n].Body)+256 <= maxBatchBytes) {
			size += len(msgs[n].Body) + 256
			n++
		}
		chunk := msgs[:n]
		msgs = msgs[n:]
		start := time.Now()
		r, err := p.p.SendSync(ctx, chunk...)
		err = sendErr(r, err)
		p.m.sentAdd(topic, "batch", err, len(chunk))
		if err != nil {
			return SendResult{}, fmt.Errorf("send batch of %d to %s: %w", len(chunk), topic, err)
		}
		last = result(r)
		p.log.DebugContext(ctx, "batch sent", "topic", topic, "messages", len(chunk),
			"queue", last.QueueID, "duration_ms", time.Since(start).Milliseconds())
	}
	return last, nil
}

// Close shuts the producer down; pending async callbacks may not run.
func (p *Producer) Close() error {
	if err := p.p.Shutdown(); err != nil {
		return fmt.Errorf("shutdown producer %s: %w", p.group, err)
	}
	return nil
}
