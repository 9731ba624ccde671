package mq

import (
	"hash/fnv"
	"sync"
	"sync/atomic"

	"github.com/apache/rocketmq-client-go/v2/primitive"
)

// selector picks the queue of every message a Producer sends:
//   - a batch (or any message) with Queue set goes to that queue, so SendBatch
//     can group messages itself;
//   - a message with a sharding key goes to queues[fnv32a(key) % len(queues)],
//     so one key's messages stay in one queue, in send order;
//   - anything else is spread round-robin.
//
// It also remembers each topic's queue list, which SendBatch groups by.
type selector struct {
	rr     atomic.Uint32
	queues sync.Map // topic -> []*primitive.MessageQueue
}

func (s *selector) Select(msg *primitive.Message, mqs []*primitive.MessageQueue, lastBrokerName string) *primitive.MessageQueue {
	if len(mqs) == 0 {
		return nil
	}
	s.queues.Store(msg.Topic, mqs)
	if q := msg.Queue; q != nil {
		for _, m := range mqs {
			if m.BrokerName == q.BrokerName && m.QueueId == q.QueueId {
				return m
			}
		}
		// The route changed between grouping and sending: fall through.
	}
	if key := msg.GetShardingKey(); key != "" {
		return mqs[shard(key, len(mqs))]
	}
	start := int(s.rr.Add(1))
	for i := range mqs {
		// After a failed send client-go passes the broker it failed on.
		if m := mqs[(start+i)%len(mqs)]; m.BrokerName != lastBrokerName || i == len(mqs)-1 {
			return m
		}
	}
	return mqs[start%len(mqs)]
}

func (s *selector) knownQueues(topic string) []*primitive.MessageQueue {
	v, ok := s.queues.Load(topic)
	if !ok {
		return nil
	}
	return v.([]*primitive.MessageQueue)
}

func shard(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}
