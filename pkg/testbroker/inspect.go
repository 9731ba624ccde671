package testbroker

// Behavior: the API tests use to set up and inspect the broker directly,
// without a client. All methods are safe for concurrent use.

import (
	"maps"
	"slices"
	"strings"
)

// CreateTopic creates name with queues read/write queues, or updates the
// queue count of an existing topic.
func (s *Server) CreateTopic(name string, queues int) {
	if queues <= 0 {
		queues = s.opts.DefaultQueues
	}
	s.mu.Lock()
	s.createTopicLocked(name, queues, queues)
	s.mu.Unlock()
}

// DeleteTopic removes a topic with its messages and committed offsets.
func (s *Server) DeleteTopic(name string) {
	s.mu.Lock()
	s.deleteTopicLocked(name)
	s.mu.Unlock()
}

// Topics lists the topics, sorted (including TBW102, SCHEDULE_TOPIC_XXXX,
// %RETRY% and %DLQ% topics).
func (s *Server) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.topics))
}

// Messages returns the retained messages of topic, queue by queue, in offset
// order. Delayed messages appear in their topic only once delivered.
func (s *Server) Messages(topicName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.topics[topicName]
	if t == nil {
		return nil
	}
	var out []Message
	for _, q := range t.queues {
		for off := q.min; off < q.max(); off++ {
			w, err := s.wireLocked(q, off)
			if err != nil {
				s.log.Error("Messages: reading the data dir failed", "topic", topicName, "queue", q.id, "offset", off, "err", err)
				continue
			}
			m, err := decodeStored(w)
			if err != nil {
				s.log.Error("Messages: a stored message does not decode", "topic", topicName, "queue", q.id, "offset", off, "err", err)
				continue
			}
			out = append(out, m.export())
		}
	}
	return out
}

// DLQ returns the dead-lettered messages of group (%DLQ%<group>).
func (s *Server) DLQ(group string) []Message { return s.Messages(dlqPrefix + group) }

// PendingDelayed is the number of scheduled messages not yet delivered
// (delay levels and retries).
func (s *Server) PendingDelayed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delayed.Len()
}

// MaxOffset is the next logical offset of (topic, queue): 0 when unknown.
func (s *Server) MaxOffset(topicName string, queue int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.topics[topicName]; t != nil && queue >= 0 && queue < len(t.queues) {
		return t.queues[queue].max()
	}
	return 0
}

// MinOffset is the oldest retained logical offset of (topic, queue).
func (s *Server) MinOffset(topicName string, queue int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.topics[topicName]; t != nil && queue >= 0 && queue < len(t.queues) {
		return t.queues[queue].min
	}
	return 0
}

// ConsumerOffset is group's committed offset (next to consume) for (topic,
// queue), or -1 when none was committed.
func (s *Server) ConsumerOffset(group, topicName string, queue int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off, ok := s.offsets[offsetKey{group, topicName, queue}]; ok {
		return off
	}
	return -1
}

// Lag is the sum, over every queue of every topic group subscribes to or
// committed offsets for, of maxOffset − committed offset (the oldest
// retained offset when nothing is committed).
func (s *Server) Lag(group string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string]bool{}
	if g := s.groups[group]; g != nil {
		for _, m := range g.members {
			for name := range m.subs {
				names[name] = true
			}
		}
	}
	for k := range s.offsets {
		if k.group == group {
			names[k.topic] = true
		}
	}
	var lag int64
	for name := range names {
		t := s.topics[name]
		if t == nil {
			continue
		}
		for i, q := range t.queues {
			committed, ok := s.offsets[offsetKey{group, name, i}]
			if !ok || committed < q.min {
				committed = q.min
			}
			if d := q.max() - committed; d > 0 {
				lag += d
			}
		}
	}
	return lag
}

// Consumers lists the client IDs currently in group, sorted.
func (s *Server) Consumers(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.groups[group]; g != nil {
		return slices.Sorted(maps.Keys(g.members))
	}
	return nil
}

// IsSystemTopic reports whether name is broker-internal (TBW102, the
// schedule topic, %RETRY%/%DLQ% topics).
func IsSystemTopic(name string) bool {
	return name == defaultTopicTBW102 || name == scheduleTopic ||
		strings.HasPrefix(name, retryPrefix) || strings.HasPrefix(name, dlqPrefix)
}
