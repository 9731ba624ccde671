package testbroker

// Behavior: import of a data dir in the earlier format (magic version 1):
// one broker.log holding the messages among the other records, each queue's
// retained messages in order, pending delayed messages and halves retention
// had dropped as "detached" copies. Replay collects them (replayLegacyRecord)
// as that format's reader did; importLegacy then appends them to the commit
// log in queue order with their queue offsets and store times (new
// commit-log offsets), and broker.log is rewritten in the current format.
// Retention applies as for any append (store.go).

import (
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

type legacyKey struct {
	topic string
	queue int32
}

type legacyQueue struct {
	min  int64
	msgs []*message
}

type legacyState struct {
	queues  map[legacyKey]*legacyQueue
	delayed map[int64]delayed // by the earlier commit-log offset
	halves  map[int64]*message
}

func newLegacyState() *legacyState {
	return &legacyState{queues: map[legacyKey]*legacyQueue{}, delayed: map[int64]delayed{}, halves: map[int64]*message{}}
}

func (s *Server) replayLegacyRecord(ls *legacyState, payload []byte) error {
	r := byteReader{b: payload[1:]}
	switch payload[0] {
	case recTopic:
		return s.replayTopicRecord(&r)
	case recTopicDelete:
		name := r.str()
		if r.err != nil {
			return errors.New("malformed topic delete record")
		}
		s.deleteTopicLocked(name)
		for k := range ls.queues {
			if k.topic == name {
				delete(ls.queues, k)
			}
		}
	case recMessage:
		flags := r.u8()
		due := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed message record")
		}
		m, err := decodeStored(r.b)
		if err != nil {
			return err
		}
		s.nextCommitLog = max(s.nextCommitLog, m.commitLogOffset+int64(len(m.wire)))
		if flags&msgDetached == 0 {
			k := legacyKey{m.topic, m.queueID}
			q := ls.queues[k]
			if q == nil {
				q = &legacyQueue{min: m.queueOffset}
				ls.queues[k] = q
			}
			switch next := q.min + int64(len(q.msgs)); {
			case m.queueOffset == next:
				q.msgs = append(q.msgs, m)
			case m.queueOffset > next || len(q.msgs) == 0:
				q.min, q.msgs = m.queueOffset, append(q.msgs[:0], m) // a gap: the queue restarts here
			}
		}
		switch {
		case m.topic == scheduleTopic && due > 0:
			m.dueMs = due
			ls.delayed[m.commitLogOffset] = delayed{due: time.UnixMilli(due), msg: m}
		case m.topic == halfTopic:
			ls.halves[m.commitLogOffset] = m
		}
	case recDelayDone, recHalfDone:
		clo := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed done record")
		}
		delete(ls.delayed, clo)
		delete(ls.halves, clo)
	case recOffset:
		return s.replayOffsetRecord(&r)
	case recNextCommitLog:
		return s.replayNextCommitLogRecord(&r)
	default:
		return fmt.Errorf("unknown record kind %d", payload[0])
	}
	return nil
}

// importLegacy appends what replayLegacyRecord collected to the commit log
// and writes it (the caller rewrites broker.log next).
func (s *Server) importLegacy(ls *legacyState) error {
	keys := make([]legacyKey, 0, len(ls.queues))
	for k := range ls.queues {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b legacyKey) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.queue - b.queue)
	})
	imported := 0
	for _, k := range keys {
		lq := ls.queues[k]
		t := s.ensureTopicLocked(k.topic, max(s.autoQueues(k.topic), int(k.queue)+1), permRW)
		for int(k.queue) >= len(t.queues) {
			t.queues = append(t.queues, newQueue(t.name, len(t.queues)))
		}
		q := t.queues[k.queue]
		if len(q.idx) > 0 || len(lq.msgs) == 0 {
			continue
		}
		q.min, q.cacheFrom = lq.min, lq.min
		for _, m := range lq.msgs {
			old := m.commitLogOffset
			m.wire = nil
			s.appendLocked(t, m)
			imported++
			s.adoptLegacyPending(ls, old, m)
		}
	}
	// Pending messages retention had dropped from their queue.
	for old, d := range ls.delayed {
		s.appendDetachedLocked(d.msg, d.msg.dueMs)
		s.adoptLegacyPending(ls, old, d.msg)
	}
	for old, m := range ls.halves {
		s.appendDetachedLocked(m, 0)
		s.adoptLegacyPending(ls, old, m)
	}
	if err := s.persist.flush(); err != nil {
		return fmt.Errorf("import the earlier data dir format: %w", err)
	}
	for _, t := range s.topics {
		for _, q := range t.queues {
			s.evictLocked(q)
		}
	}
	s.log.Warn("data dir in the earlier format imported", "dir", s.opts.DataDir, "messages", imported,
		"delayed", s.delayed.Len(), "open_transactions", len(s.halves))
	return nil
}

// adoptLegacyPending makes m, stored anew, the pending delayed message or
// half it was at its earlier commit-log offset old.
func (s *Server) adoptLegacyPending(ls *legacyState, old int64, m *message) {
	if d, ok := ls.delayed[old]; ok {
		delete(ls.delayed, old)
		heap.Push(&s.delayed, delayed{due: d.due, msg: m})
		s.refLocked(m.commitLogOffset)
	}
	if _, ok := ls.halves[old]; ok {
		delete(ls.halves, old)
		s.halves[m.commitLogOffset] = &halfMessage{msg: m, group: m.props["PGROUP"], nextCheck: s.now().Add(s.opts.TxCheckTimeout)}
		s.refLocked(m.commitLogOffset)
	}
}

// appendDetachedLocked writes m to the commit log without putting it in a
// queue (a pending message retention had dropped).
func (s *Server) appendDetachedLocked(m *message, due int64) {
	m.commitLogOffset = s.nextCommitLog
	m.seal()
	seg := s.placeLocked(m)
	s.nextCommitLog += recordLen(len(m.wire))
	s.persist.message(seg, m, msgDetached, due)
}
