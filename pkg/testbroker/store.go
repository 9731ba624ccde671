package testbroker

// Behavior: the in-memory message store. Every topic has queues; every queue
// is a slice of sealed messages whose logical offsets run from min to max-1.
// Appends assign the next logical offset, a broker-wide unique commit-log
// offset and the store timestamp, then answer the pulls held on that queue
// (pull.go).
// When a queue holds more than Options.RetainPerQueue messages or more than
// Options.RetainBytesPerQueue encoded bytes (always keeping the newest
// message) the oldest are dropped (min advances), so memory stays flat under a long load; a pull
// below min then answers PULL_OFFSET_MOVED with nextBeginOffset=min.
//
// All state lives under Server.mu. Methods named *Locked require it held.
// With Options.DataDir every state change is also recorded in the log
// (persist.go): appendLocked calls s.onAppend once a message is final, and
// topic, offset, delay and transaction changes call the log*Locked hooks.

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

const (
	defaultTopicTBW102 = "TBW102"
	scheduleTopic      = "SCHEDULE_TOPIC_XXXX"
	retryPrefix        = "%RETRY%"
	dlqPrefix          = "%DLQ%"

	permInherit = 1
	permWrite   = 2
	permRead    = 4
	permRW      = permRead | permWrite

	maxDelayLevel = 18
)

var validTopic = regexp.MustCompile(`^[%|a-zA-Z0-9_-]{1,127}$`)

type topic struct {
	name        string
	readQueues  int
	writeQueues int
	perm        int
	queues      []*queue // len = max(readQueues, writeQueues)
}

type queue struct {
	msgs    []*message // msgs[i] has logical offset min+i
	min     int64
	bytes   int           // sum of len(wire) over msgs
	waiters []*pullWaiter // pulls held until an append answers them (pull.go)
	deleted bool          // its topic was deleted; pulls answer 17
	// dropChecked is when a retention drop last looked for groups it left
	// behind (warnDroppedLocked).
	dropChecked time.Time
}

func newQueue() *queue { return &queue{} }

func (q *queue) max() int64 { return q.min + int64(len(q.msgs)) }

// at returns the message at logical offset off, or nil.
func (q *queue) at(off int64) *message {
	if off < q.min || off >= q.max() {
		return nil
	}
	return q.msgs[off-q.min]
}

type offsetKey struct {
	group, topic string
	queue        int
}

// topicLocked returns the topic or nil.
func (s *Server) topicLocked(name string) *topic { return s.topics[name] }

// ensureTopicLocked returns the topic, creating it with n queues when absent.
func (s *Server) ensureTopicLocked(name string, n, perm int) *topic {
	if t := s.topics[name]; t != nil {
		return t
	}
	t := &topic{name: strings.Clone(name), perm: perm} // names may be slices of a request header
	s.topics[name] = t
	s.resizeTopicLocked(t, n, n)
	s.log.Debug("topic created", "topic", name, "queues", n)
	return t
}

// resizeTopicLocked sets the queue counts. Queues are never removed, so
// messages and offsets survive a shrink and reappear on a later grow.
func (s *Server) resizeTopicLocked(t *topic, read, write int) {
	t.readQueues, t.writeQueues = read, write
	for len(t.queues) < max(read, write) {
		t.queues = append(t.queues, newQueue())
	}
	s.logTopicLocked(t)
}

// autoQueues is the queue count for a topic created on demand.
func (s *Server) autoQueues(name string) int {
	if strings.HasPrefix(name, retryPrefix) || strings.HasPrefix(name, dlqPrefix) {
		return 1
	}
	return s.opts.DefaultQueues
}

// appendLocked stores m at the end of (m.topic, m.queueID), which must exist.
// It fills queueOffset, commitLogOffset, storeTimestamp and storeHost.
func (s *Server) appendLocked(t *topic, m *message) {
	q := t.queues[m.queueID]
	m.topic = t.name
	m.queueOffset = q.max()
	m.commitLogOffset = s.nextCommitLog
	m.storeHost = s.storeHost
	if m.storeTimestamp == 0 {
		m.storeTimestamp = s.now().UnixMilli()
	}
	s.arena = m.sealInto(s.arena)
	s.nextCommitLog += int64(len(m.wire))
	q.msgs = append(q.msgs, m)
	q.bytes += len(m.wire)
	s.byCommitLog[m.commitLogOffset] = m
	if s.trimLocked(q) > 0 {
		s.warnDroppedLocked(q, t.name, int(m.queueID))
	}
	s.wakeLocked(q)
	if s.onAppend != nil {
		s.onAppend(m)
	}
}

// trimLocked applies the retention bounds to q, always keeping its newest
// message, and returns how many messages it dropped.
func (s *Server) trimLocked(q *queue) int {
	drop := max(len(q.msgs)-s.opts.RetainPerQueue, 0)
	for bytes := q.bytes; drop < len(q.msgs)-1 && bytes > s.opts.RetainBytesPerQueue; drop++ {
		bytes -= len(q.msgs[drop].wire)
	}
	if drop > 0 {
		for _, old := range q.msgs[:drop] {
			delete(s.byCommitLog, old.commitLogOffset)
			q.bytes -= len(old.wire)
		}
		clear(q.msgs[:drop])
		q.msgs = q.msgs[drop:]
		q.min += int64(drop)
	}
	return drop
}

// dropCheckEvery bounds how often a queue at its retention bound looks for
// groups the drops leave behind (a scan of the committed offsets).
const dropCheckEvery = 10 * time.Second

// warnDroppedLocked logs at Warn the groups whose committed offset on
// (topic, queueID) is below the queue's oldest retained message: retention
// dropped messages they had not consumed yet, which they will never see (a
// backlog past what a dev broker keeps in memory; real RocketMQ keeps it on
// disk for days). At most once per dropCheckEvery per queue.
func (s *Server) warnDroppedLocked(q *queue, topic string, queueID int) {
	now := s.now()
	if now.Sub(q.dropChecked) < dropCheckEvery {
		return
	}
	q.dropChecked = now
	var behind []string
	for k, off := range s.offsets {
		if k.topic == topic && k.queue == queueID && off < q.min {
			behind = append(behind, k.group)
		}
	}
	if len(behind) == 0 {
		return
	}
	slices.Sort(behind)
	s.log.Warn("retention dropped messages a consumer group had not consumed", "topic", topic, "queue", queueID,
		"groups", behind, "min_offset", q.min, "retain_per_queue", s.opts.RetainPerQueue,
		"retain_bytes_per_queue", s.opts.RetainBytesPerQueue)
}
