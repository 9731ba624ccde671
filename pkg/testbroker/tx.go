package testbroker

// Behavior: transactional messages. SEND of a half message (sysFlag 0x4 +
// TRAN_MSG=true), END_TRANSACTION (37) and the broker→client
// CHECK_TRANSACTION_STATE (39).
//
//   - A half message is stored in RMQ_SYS_TRANS_HALF_TOPIC (queue 0) with
//     REAL_TOPIC/REAL_QID; it is invisible to consumers. The SEND reply has
//     msgId = its offsetMsgId, queueOffset = its half-queue offset and
//     transactionId = UNIQ_KEY.
//   - 37 (oneway) finds the half by commitLogOffset, else by msgId
//     (UNIQ_KEY). commitOrRollback 8 commits: a copy with sysFlag commit
//     (0x8) goes to the real topic and queue with new offsets, its
//     properties kept as 4.9.4 does (TRAN_MSG=true, REAL_TOPIC, REAL_QID, plus
//     TRANSACTION_CHECK_TIMES once checked; a DELAY on it is honoured);
//     12 rolls back (drops it); 0 leaves it for a check.
//   - A half still open Options.TxCheckTimeout after it was stored is
//     checked every Options.TxCheckInterval: 39 goes to one live connection
//     of its producer group (PGROUP; connections are remembered from SENDs
//     and heartbeats) with ext tranStateTableOffset, commitLogOffset, msgId,
//     transactionId, offsetMsgId and the message (real topic and queue) as
//     body. After Options.TxCheckMax checks it is dropped, as Java moves it
//     to TRANS_CHECK_MAX_TIME_TOPIC.

import (
	"strconv"
	"time"
)

const halfTopic = "RMQ_SYS_TRANS_HALF_TOPIC"

type halfMessage struct {
	msg       *message
	group     string
	checks    int
	nextCheck time.Time
}

// putHalfLocked stores a prepared message and answers the SEND.
func (s *Server) putHalfLocked(req *command, m *message, realTopic string, realQueue int) *command {
	m.props[propRealTopic] = realTopic
	m.props[propRealQueueID] = strconv.Itoa(realQueue)
	m.queueID = 0
	t := s.ensureTopicLocked(halfTopic, 1, permRW)
	s.appendLocked(t, m)
	s.halves[m.commitLogOffset] = &halfMessage{
		msg:       m,
		group:     m.props["PGROUP"],
		nextCheck: s.now().Add(s.opts.TxCheckTimeout),
	}
	s.refLocked(m.commitLogOffset) // its record must outlive retention until it ends
	resp := newResponse(req, codeSuccess, "")
	resp.setExt("msgId", m.offsetMsgID())
	resp.setExt("queueId", strconv.Itoa(realQueue))
	resp.setExt("queueOffset", strconv.FormatInt(m.queueOffset, 10))
	resp.setExt("transactionId", m.props[propUniqKey])
	resp.setExt("MSG_REGION", "DefaultRegion")
	resp.setExt("TRACE_ON", "true")
	return resp
}

func (s *Server) handleEndTransaction(c *conn, req *command) *command {
	clo := extInt(req, "commitLogOffset", -1)
	state := extInt(req, "commitOrRollback", 0)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.halves[clo]
	if h == nil {
		if id := req.ext("msgId"); id != "" {
			for _, cand := range s.halves {
				if cand.msg.props[propUniqKey] == id {
					h = cand
					break
				}
			}
		}
	}
	if h == nil {
		return newResponse(req, codeSystemError, "no open transaction for commitLogOffset "+strconv.FormatInt(clo, 10))
	}
	switch state {
	case sysFlagTxCommit:
		delete(s.halves, h.msg.commitLogOffset)
		s.logDoneLocked(recHalfDone, h.msg.commitLogOffset)
		s.unrefLocked(h.msg.commitLogOffset)
		m := h.msg.clone()
		name := m.props[propRealTopic]
		qid, _ := strconv.Atoi(m.props[propRealQueueID])
		// 4.9.4 delivers TRAN_MSG, REAL_TOPIC and REAL_QID unchanged
		// (measured), only the sysFlag says "committed".
		if h.checks > 0 {
			m.props["TRANSACTION_CHECK_TIMES"] = strconv.Itoa(h.checks)
		}
		m.sysFlag = m.sysFlag&^sysFlagTxMask | sysFlagTxCommit
		m.storeTimestamp = 0
		t := s.ensureTopicLocked(name, s.autoQueues(name), permRW)
		if qid < 0 || qid >= len(t.queues) {
			qid = 0
		}
		m.queueID = int32(qid)
		s.putLocked(t, m)
	case sysFlagTxRollback:
		delete(s.halves, h.msg.commitLogOffset)
		s.logDoneLocked(recHalfDone, h.msg.commitLogOffset)
		s.unrefLocked(h.msg.commitLogOffset)
	}
	return newResponse(req, codeSuccess, "")
}

// txCheckLoop sends CHECK_TRANSACTION_STATE for overdue halves.
func (s *Server) txCheckLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(min(s.opts.TxCheckInterval, s.opts.TxCheckTimeout, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		type check struct {
			c   *conn
			cmd *command
		}
		var checks []check
		s.mu.Lock()
		now := s.now()
		for clo, h := range s.halves {
			if now.Before(h.nextCheck) {
				continue
			}
			if h.checks >= s.opts.TxCheckMax {
				delete(s.halves, clo)
				s.logDoneLocked(recHalfDone, clo)
				s.unrefLocked(clo)
				s.log.Warn("transaction dropped after max checks", "msg_id", h.msg.msgID(), "group", h.group)
				continue
			}
			var target *conn
			for pc := range s.producers[h.group] {
				target = pc
				break
			}
			if target == nil {
				continue // no producer of that group is connected; retry next tick
			}
			h.checks++
			h.nextCheck = now.Add(s.opts.TxCheckInterval)
			body := h.msg.clone()
			body.topic = body.props[propRealTopic]
			qid, _ := strconv.Atoi(body.props[propRealQueueID])
			body.queueID = int32(qid)
			body.seal()
			checks = append(checks, check{c: target, cmd: &command{
				Code: 39, Version: 317, Opaque: nextServerOpaque(), Body: body.wire,
				ExtFields: map[string]string{
					"tranStateTableOffset": strconv.FormatInt(h.msg.queueOffset, 10),
					"commitLogOffset":      strconv.FormatInt(h.msg.commitLogOffset, 10),
					"msgId":                h.msg.props[propUniqKey],
					"transactionId":        h.msg.props[propUniqKey],
					"offsetMsgId":          h.msg.offsetMsgID(),
				},
			}})
		}
		s.mu.Unlock()
		s.flushLog()
		for _, ch := range checks {
			ch.c.write(ch.cmd)
		}
	}
}
