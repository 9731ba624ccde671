package testbroker

// Behavior: consumer offsets and queue offsets.
//   - 14 QUERY_CONSUMER_OFFSET: the committed offset (code 0, ext offset);
//     when none is committed and the queue's minOffset is 0 (message 0 still
//     there, or the queue is empty) → 0 / SUCCESS like Java, so a new
//     CONSUME_FROM_LAST_OFFSET group still reads from the start of a fresh
//     queue; otherwise 22 QUERY_NOT_FOUND.
//   - 15 UPDATE_CONSUMER_OFFSET (oneway; answered anyway): commitOffset is
//     the next offset to consume. Pulls with sysFlag&1 commit the same way.
//     Fault hook DropOffsetCommits ignores both for a group.
//   - 30 GET_MAX_OFFSET / 31 GET_MIN_OFFSET: ext offset (0 for an unknown
//     topic or queue; the client does not check the code).
//   - 29 SEARCH_OFFSET_BY_TIMESTAMP: first offset whose store timestamp ≥
//     timestamp; for a later timestamp the last message's offset (max-1, as
//     4.9.4 answers), 0 for an empty queue.

import (
	"sort"
	"strconv"
)

func (s *Server) commitOffsetLocked(group, topicName string, qid int, off int64) {
	if s.faults.dropCommits[group] {
		return
	}
	k := offsetKey{group, topicName, qid}
	if old, ok := s.offsets[k]; ok && old == off {
		return
	}
	s.offsets[k] = off
	s.touchGroupLocked(group)
	s.logOffsetLocked(k, off)
	// What the group consumed may be what held the queue past its bound:
	// drop it now rather than at the next append (a drained backlog frees
	// its segments while the group catches up).
	if t := s.topics[topicName]; t != nil && qid >= 0 && qid < len(t.queues) {
		s.trimLocked(t.queues[qid], 0, 0)
	}
}

func (s *Server) queueLocked(req *command) *queue {
	t := s.topicLocked(req.ext("topic"))
	qid := int(extInt(req, "queueId", -1))
	if t == nil || qid < 0 || qid >= len(t.queues) {
		return nil
	}
	return t.queues[qid]
}

func offsetResponse(req *command, off int64) *command {
	resp := newResponse(req, codeSuccess, "")
	resp.setExt("offset", strconv.FormatInt(off, 10))
	return resp
}

func (s *Server) handleQueryOffset(c *conn, req *command) *command {
	key := offsetKey{req.ext("consumerGroup"), req.ext("topic"), int(extInt(req, "queueId", -1))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if off, ok := s.offsets[key]; ok {
		return offsetResponse(req, off)
	}
	if q := s.queueLocked(req); q == nil || q.min == 0 {
		return offsetResponse(req, 0)
	}
	return newResponse(req, codeQueryNotFound, "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first")
}

func (s *Server) handleUpdateOffset(c *conn, req *command) *command {
	off := extInt(req, "commitOffset", -1)
	qid := int(extInt(req, "queueId", -1))
	if off < 0 || qid < 0 {
		return newResponse(req, codeSystemError, "invalid commitOffset or queueId")
	}
	s.mu.Lock()
	s.commitOffsetLocked(req.ext("consumerGroup"), req.ext("topic"), qid, off)
	s.mu.Unlock()
	return newResponse(req, codeSuccess, "")
}

func (s *Server) handleGetMaxOffset(c *conn, req *command) *command {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queueLocked(req); q != nil {
		return offsetResponse(req, q.max())
	}
	return offsetResponse(req, 0)
}

func (s *Server) handleGetMinOffset(c *conn, req *command) *command {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q := s.queueLocked(req); q != nil {
		return offsetResponse(req, q.min)
	}
	return offsetResponse(req, 0)
}

func (s *Server) handleSearchOffset(c *conn, req *command) *command {
	ts := extInt(req, "timestamp", 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queueLocked(req)
	if q == nil {
		return offsetResponse(req, 0)
	}
	i := sort.Search(len(q.idx), func(i int) bool { return q.idx[i].storeMs >= ts })
	if i == len(q.idx) && i > 0 {
		i-- // 4.9.4 answers the last message's offset for a later timestamp
	}
	return offsetResponse(req, q.min+int64(i))
}
