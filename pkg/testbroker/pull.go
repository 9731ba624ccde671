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
//     800 scanned per pull). Messages past the cache are read from the
//     data dir's segments (store.go); a failed read answers 1.
//   - nothing new and sysFlag&2 → held until an append to that queue
//     answers it (the appending request sends that answer right after its
//     log write, pullWaiter), the suspend timeout (capped by
//     Options.MaxPullHold: 19 PULL_NOT_FOUND with nextBeginOffset = the
//     request offset), the connection closes or the server stops.
// Every answer carries nextBeginOffset, minOffset, maxOffset and
// suggestWhichBrokerId "0" (client-go parses a missing one as 0).

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

const (
	pullMaxScan  = 800
	pullMaxBytes = 4 << 20
)

// tagFilter matches interned TAGS (store.go internTagLocked); nil matches
// everything.
type tagFilter map[uint32]struct{}

// parseTagFilter splits a tag expression; nil means everything.
func parseTagFilter(expr string) []string {
	expr = strings.TrimSpace(expr)
	if expr == "" || expr == "*" {
		return nil
	}
	var tags []string
	for _, t := range strings.Split(expr, "||") {
		if t = strings.TrimSpace(t); t == "*" {
			return nil
		} else if t != "" {
			tags = append(tags, t)
		}
	}
	return tags
}

// tagFilterLocked builds the filter of a tag expression.
func (s *Server) tagFilterLocked(expr string) tagFilter {
	tags := parseTagFilter(expr)
	if tags == nil {
		return nil
	}
	f := make(tagFilter, len(tags))
	for _, t := range tags {
		f[s.internTagLocked(t)] = struct{}{}
	}
	return f
}

func (f tagFilter) match(tag uint32) bool {
	if f == nil {
		return true
	}
	_, ok := f[tag]
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
// registers a pullWaiter on the queue and returns a func that holds (on
// another goroutine: the reader must not block) until the pull is
// answered or the suspend timeout passes.
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
		filter = s.tagFilterLocked(req.ext("subscription"))
	} else {
		filter = s.subscriptionLocked(group, name)
	}
	q := t.queues[qid]
	resp, next := s.pullOnceLocked(req, q, offset, maxNums, filter)
	if resp == nil && suspend <= 0 {
		resp = pullResponse(req, codePullNotFound, next, q)
	}
	if resp != nil {
		s.mu.Unlock()
		return resp, nil
	}
	w := &pullWaiter{c: c, req: req, q: q, offset: next, maxNums: maxNums, filter: filter, done: make(chan struct{})}
	q.waiters = append(q.waiters, w)
	s.mu.Unlock()
	s.flushLog() // the commit above must not wait for a held pull
	return nil, func() *command { return s.hold(w, suspend) }
}

// pullWaiter is a pull held on a queue until an append (or a topic
// deletion) lets pullOnceLocked answer it. wakeLocked answers it under
// Server.mu and queues it on Server.ready; the goroutine that next writes
// the log (flushLog, conn.flushInline) also sends the response, so a new
// message reaches a waiting consumer without first waking another
// goroutine. The pull's own goroutine (hold) handles the timeout, a closed
// connection, and a response nobody else sent.
type pullWaiter struct {
	c       *conn
	req     *command
	q       *queue
	offset  int64 // where to look next; moves past filtered appends (under Server.mu)
	maxNums int
	filter  tagFilter
	resp    *command      // the answer; set under Server.mu
	done    chan struct{} // closed when resp is set
	sent    atomic.Bool   // claimed by whoever writes resp
}

// wakeLocked answers the pulls held on q that can be answered now.
func (s *Server) wakeLocked(q *queue) {
	if len(q.waiters) == 0 {
		return
	}
	kept := q.waiters[:0]
	for _, w := range q.waiters {
		resp, next := s.pullOnceLocked(w.req, q, w.offset, w.maxNums, w.filter)
		if resp == nil {
			w.offset = next // past appended messages the filter skips
			kept = append(kept, w)
			continue
		}
		w.resp = resp
		close(w.done)
		s.readyMu.Lock()
		s.ready = append(s.ready, w)
		s.readyMu.Unlock()
	}
	clear(q.waiters[len(kept):])
	q.waiters = kept
}

// hold waits for w's answer, the suspend timeout (then 19), the
// connection's end or the server's. It returns the response to write, or
// nil when there is none or another goroutine sent it.
func (s *Server) hold(w *pullWaiter, suspend time.Duration) *command {
	timer := time.NewTimer(suspend)
	defer timer.Stop()
	timedOut := false
	select {
	case <-w.done:
		return w.claim() // resp was set before done was closed
	case <-timer.C:
		timedOut = true
	case <-w.c.done:
	case <-s.ctx.Done():
	}
	s.mu.Lock()
	if w.resp != nil { // answered meanwhile
		s.mu.Unlock()
		return w.claim()
	}
	w.q.waiters = slices.DeleteFunc(w.q.waiters, func(o *pullWaiter) bool { return o == w })
	var resp *command
	if timedOut {
		resp = pullResponse(w.req, codePullNotFound, w.offset, w.q)
	}
	s.mu.Unlock()
	return resp
}

// claim returns w's answer if no other goroutine sent it.
func (w *pullWaiter) claim() *command {
	if !w.sent.CompareAndSwap(false, true) {
		return nil
	}
	return w.resp
}

// deliverReady sends the answers of pulls that appends released since the
// last call, once the log holds those appends. Answers for connection c
// are appended to out (its caller writes out); others are written unless
// their connection's writer is backed up, in which case the pull's own
// goroutine sends them.
func (s *Server) deliverReady(c *conn, out []byte) []byte {
	s.readyMu.Lock()
	ready := s.ready
	s.ready = nil
	s.readyMu.Unlock()
	for _, w := range ready {
		if w.c == c {
			if w.sent.CompareAndSwap(false, true) {
				out = appendFrame(out, w.resp)
			}
			continue
		}
		w.c.writeClaimed(w.resp, &w.sent)
	}
	return out
}

func pullResponse(req *command, code int16, next int64, q *queue) *command {
	resp := newResponse(req, code, "")
	resp.setExt("nextBeginOffset", strconv.FormatInt(next, 10))
	resp.setExt("minOffset", strconv.FormatInt(q.min, 10))
	resp.setExt("maxOffset", strconv.FormatInt(q.max(), 10))
	resp.setExt("suggestWhichBrokerId", "0")
	return resp
}

// pullOnceLocked answers the pull if it can be answered now. nil means wait
// for more messages, from next on: next is past the messages the filter
// skipped (real RocketMQ holds a pull until a matching message arrives, and
// answers a timed-out one with the offset advanced past what it skipped).
// A scan that reaches pullMaxScan without a match answers
// PULL_RETRY_IMMEDIATELY from where it stopped.
func (s *Server) pullOnceLocked(req *command, q *queue, offset int64, maxNums int, filter tagFilter) (resp *command, next int64) {
	switch {
	case q.deleted:
		return newResponse(req, codeTopicNotExist, "topic deleted"), offset
	case offset < q.min:
		return pullResponse(req, codePullOffsetMoved, q.min, q), offset
	case offset > q.max():
		return pullResponse(req, codePullOffsetMoved, q.max(), q), offset
	case offset == q.max():
		return nil, offset
	}
	var (
		size    int
		found   int
		scanned int
	)
	next = offset
	for off := offset; off < q.max() && found < maxNums && scanned < pullMaxScan; off++ {
		e := q.entryAt(off)
		if found > 0 && size+int(e.size) > pullMaxBytes {
			break
		}
		scanned++
		next = off + 1
		if !filter.match(e.tag) {
			continue
		}
		found++
		size += int(e.size)
	}
	if found == 0 {
		if next == q.max() {
			return nil, next // nothing that matches yet
		}
		return pullResponse(req, codePullRetryImmediately, next, q), next
	}
	body, err := s.appendWiresLocked(make([]byte, 0, size), q, offset, next, filter)
	if err != nil {
		s.log.Error("pull: reading the data dir failed", "topic", q.topic, "queue", q.id, "offset", offset, "err", err)
		return newResponse(req, codeSystemError, "read message store: "+err.Error()), offset
	}
	resp = pullResponse(req, codeSuccess, next, q)
	resp.Body = body
	return resp, next
}
