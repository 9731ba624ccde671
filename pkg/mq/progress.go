package mq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// codeTopicNotExist is the name server's answer to a route lookup of a topic
// no broker has.
const codeTopicNotExist = 17

// RetryTopic is the topic RocketMQ redelivers a clustering group's failed
// messages from once their reconsume delay is over.
func RetryTopic(group string) string { return "%RETRY%" + group }

// QueueOffset is one queue's offset in a Snapshot.
type QueueOffset struct {
	Topic   string
	Broker  string // master address
	QueueID int
	Offset  int64
}

// Snapshot is the end of every readable queue of some topics at one moment:
// for each queue, the offset the next message stored in it gets.
type Snapshot []QueueOffset

// TakeSnapshot asks the brokers for the max offset of every readable queue
// of topics. A topic no broker has contributes no queue: nothing was stored
// in it.
func TakeSnapshot(ctx context.Context, cfg Config, topics ...string) (Snapshot, error) {
	var snap Snapshot
	err := forEachQueue(ctx, cfg, topics, func(c *remotingConn, topic string, id int) error {
		off, err := offsetCall(c, codeGetMaxOffset, map[string]string{"topic": topic, "queueId": strconv.Itoa(id)})
		if err != nil {
			return fmt.Errorf("max offset of %s queue %d on %s: %w", topic, id, c.addr, err)
		}
		snap = append(snap, QueueOffset{Topic: topic, Broker: c.addr, QueueID: id, Offset: off})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot of %v: %w", topics, err)
	}
	return snap, nil
}

// Behind returns how many of the messages stored before snap the group has
// not committed yet: over snap's queues, the snapshot offset minus the
// group's committed offset in the broker, where positive. 0 means the group's
// consumers took every message below the snapshot and committed its outcome:
// handled, or sent back for a later retry (client-go commits past a message
// once the broker has its retry copy). A queue the group never committed on
// counts from its oldest retained message, where a group consuming from the
// first offset starts.
//
// Consumers commit periodically (client-go: every 5 s), so Behind reaches 0
// up to that long after the last message below the snapshot was handled.
func Behind(ctx context.Context, cfg Config, group string, snap Snapshot) (int64, error) {
	perBroker := map[string][]QueueOffset{}
	var addrs []string
	for _, q := range snap {
		if _, ok := perBroker[q.Broker]; !ok {
			addrs = append(addrs, q.Broker)
		}
		perBroker[q.Broker] = append(perBroker[q.Broker], q)
	}
	slices.Sort(addrs)
	var behind int64
	for _, addr := range addrs {
		c, err := dialRemoting(ctx, addr, cfg)
		if err != nil {
			return 0, fmt.Errorf("progress of %s: %w", group, err)
		}
		for _, q := range perBroker[addr] {
			committed, err := committedOffset(c, group, q.Topic, q.QueueID)
			if err != nil {
				c.Close()
				return 0, fmt.Errorf("progress of %s on %s queue %d: %w", group, q.Topic, q.QueueID, err)
			}
			behind += max(q.Offset-committed, 0)
		}
		c.Close()
	}
	return behind, nil
}

// committedOffset is group's committed offset of a queue, or the queue's
// oldest retained offset when the group never committed there.
func committedOffset(c *remotingConn, group, topic string, queueID int) (int64, error) {
	q := map[string]string{"topic": topic, "queueId": strconv.Itoa(queueID)}
	off, err := offsetCall(c, codeQueryConsumerOffset,
		map[string]string{"consumerGroup": group, "topic": topic, "queueId": q["queueId"]})
	var re *remotingError
	if errors.As(err, &re) && re.Code == codeQueryNotFound {
		off, err = offsetCall(c, codeGetMinOffset, q)
	}
	if err != nil {
		return 0, fmt.Errorf("consumer offset: %w", err)
	}
	return off, nil
}

// forEachQueue calls fn for every readable queue of topics, holding one
// connection per broker master.
func forEachQueue(ctx context.Context, cfg Config, topics []string, fn func(c *remotingConn, topic string, id int) error) error {
	type queues struct {
		topic string
		n     int
	}
	perBroker := map[string][]queues{}
	var addrs []string
	for _, topic := range topics {
		r, err := queryRoute(ctx, cfg.NameServers, topic)
		var re *remotingError
		if errors.As(err, &re) && re.Code == codeTopicNotExist {
			continue
		}
		if err != nil {
			return err
		}
		for _, bq := range r.readQueues() {
			if _, ok := perBroker[bq.Addr]; !ok {
				addrs = append(addrs, bq.Addr)
			}
			perBroker[bq.Addr] = append(perBroker[bq.Addr], queues{topic, bq.Queues})
		}
	}
	slices.Sort(addrs)
	for _, addr := range addrs {
		c, err := dialRemoting(ctx, addr, cfg)
		if err != nil {
			return err
		}
		for _, q := range perBroker[addr] {
			for id := range q.n {
				if err := fn(c, q.topic, id); err != nil {
					c.Close()
					return err
				}
			}
		}
		c.Close()
	}
	return nil
}
