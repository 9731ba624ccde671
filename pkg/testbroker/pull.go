package testbroker

// Behavior: PULL_MESSAGE (11) with long polling.
//
// Ext: consumerGroup, topic, queueId, queueOffset, maxMsgNums, sysFlag
// (1 commitOffset valid, 2 suspend, 4 subscription in request),
// commitOffset, suspendTimeoutMillis, subscription.
//   - sysFlag&1: commitOffset is stored as the group's offset first.
//   - Filter: the request's subscription when sysFlag&4, else the group's
//     heartbeat subscription for the topic; "*"/"" or none match all,
//     otherwise "a || b" matches messages whose TAGS is one of them.
//   - offset < minOffset → 21 PULL_OFFSET_MOVED, nextBeginOffset = min;
//     offset > maxOffset → 21, nextBeginOffset = max.
//   - messages found → 0 with up to maxMsgNums matches (and at most ~4 MiB),
//     nextBeginOffset past the last scanned message; scanned but none
//     matched → 20 PULL_RETRY_IMMEDIATELY past the scanned range (at most
//     800 scanned per pull).
//   - nothing new and sysFlag&2 → held until an append to that queue, the
//     suspend timeout (capped by Options.MaxPullHold), the connection closes
//     or the server stops; then re-checked, else 19 PULL_NOT_FOUND with
//     nextBeginOffset = the request offset.
// Every answer carries nextBeginOffset, minOffset, maxOffset and
// suggestWhichBrokerId "0" (client-go parses a missing one as 0).

import (
	"strconv"
	"strings"
	"time"
)

const (
	pullMaxScan  = 800
	pullMaxBytes = 4 << 20
)

// tagFilter matches TAGS; nil matches everything.
type tagFilter map[string]struct{}

func parseTagFilter(expr string) tagFilter {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		return nil
	}
	f := tagFilter{}
	for _, t := range strings.Split(expr, "||") {
		if t = strings.TrimSpace(t); t != "" {
			f[t] = struct{}{}
		}
	}
	if _, all := f["*"]; all || len(f) == 0 {
		return nil
	}
	return f
}

func (f tagFilter) match(m *message) bool {
	if f == nil {
		return true
	}
	_, ok := f[m.props[propTags]]
	return ok
}

func (s *Server) handlePull(c *conn, req *command) *command {
	resp, hold := s.startPull(c, req)
	if hold != nil {
		return hold()
	}
	return resp
}

// startPull answers the pull when it can be answered now. Otherwise it
// returns hold, which waits (on another goroutine: the reader must not
// block) until the queue changes or the suspend timeout passes.
func (s *Server) startPull(c *conn, req *command) (*command, func() *command) {
	group := req.ext("consumerGroup")
	name := req.ext("topic")
	qid := int(extInt(req, "queueId", -1))
	offset := extInt(req, "queueOffset", 0)
	maxNums := int(extInt(req, "maxMsgNums", 32))
	sysFlag := extInt(req, "sysFlag", 0)
	suspend := time.Duration(extInt(req, "suspendTimeoutMillis", 0)) * time.Millisecond
	if maxNums <= 0 {
		maxNums = 32
	}
	suspend = min(suspend, s.opts.MaxPullHold)
	if sysFlag&2 == 0 {
		suspend = 0
	}

	s.mu.Lock()
	t := s.topicLocked(name)
	if t == nil {
		s.mu.Unlock()
		return newResponse(req, codeTopicNotExist, "topic["+name+"] not exist"), nil
	}
	if qid < 0 || qid >= len(t.queues) {
		s.mu.Unlock()
		return newResponse(req, codeSystemError, "queueId "+strconv.Itoa(qid)+" out of range"), nil
	}
	if sysFlag&1 != 0 {
		if co := extInt(req, "commitOffset", -1); co >= 0 {
			s.commitOffsetLocked(group, name, qid, co)
		}
	}
	var filter tagFilter
	if sysFlag&4 != 0 {
		filter = parseTagFilter(req.ext("subscription"))
	} else {
		filter = s.subscriptionLocked(group, name)
	}
	q := t.queues[qid]
	resp, notify := s.pullOnceLocked(req, q, offset, maxNums, filter)
	s.mu.Unlock()
	if resp != nil {
		return resp, nil
	}
	if suspend <= 0 {
		return s.pullNotFound(req, q, offset), nil
	}
	s.flushLog() // the commit above must not wait for a held pull
	return nil, func() *command {
		timer := time.NewTimer(suspend)
		defer timer.Stop()
		for {
			select {
			case <-notify:
			case <-timer.C:
				return s.pullNotFound(req, q, offset)
			case <-c.done:
				return nil
			case <-s.ctx.Done():
				return nil
			}
			s.mu.Lock()
			resp, notify = s.pullOnceLocked(req, q, offset, maxNums, filter)
			s.mu.Unlock()
			if resp != nil {
				return resp
			}
		}
	}
}

func (s *Server) pullNotFound(req *command, q *queue, offset int64) *command {
	s.mu.Lock()
	defer s.mu.Unlock()
	return pullResponse(req, codePullNotFound, offset, q)
}

func pullResponse(req *command, code int16, next int64, q *queue) *command {
	resp := newResponse(req, code, "")
	resp.ExtFields["nextBeginOffset"] = strconv.FormatInt(next, 10)
	resp.ExtFields["minOffset"] = strconv.FormatInt(q.min, 10)
	resp.ExtFields["maxOffset"] = strconv.FormatInt(q.max(), 10)
	resp.ExtFields["suggestWhichBrokerId"] = "0"
	return resp
}

// pullOnceLocked answers the pull if it can be answered now; otherwise it
// returns the queue's notify channel to wait on.
func (s *Server) pullOnceLocked(req *command, q *queue, offset int64, maxNums int, filter tagFilter) (*command, <-chan struct{}) {
	switch {
	case q.deleted:
		return newResponse(req, codeTopicNotExist, "topic deleted"), nil
	case offset < q.min:
		return pullResponse(req, codePullOffsetMoved, q.min, q), nil
	case offset > q.max():
		return pullResponse(req, codePullOffsetMoved, q.max(), q), nil
	case offset == q.max():
		return nil, q.waitLocked()
	}
	var (
		body    []byte
		found   int
		scanned int
		next    = offset
	)
	for off := offset; off < q.max() && found < maxNums && scanned < pullMaxScan; off++ {
		m := q.at(off)
		if found > 0 && len(body)+len(m.wire) > pullMaxBytes {
			break
		}
		scanned++
		next = off + 1
		if !filter.match(m) {
			continue
		}
		found++
		body = append(body, m.wire...)
	}
	if found == 0 {
		return pullResponse(req, codePullRetryImmediately, next, q), nil
	}
	resp := pullResponse(req, codeSuccess, next, q)
	resp.Body = body
	return resp, nil
}
