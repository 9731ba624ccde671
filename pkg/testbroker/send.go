package testbroker

// Behavior: SEND_MESSAGE (10, V1 header) and SEND_BATCH_MESSAGE (320, V2
// one-letter header keys a..n).
//
// A send stores the body as-is (sysFlag bit0 = zlib-compressed, kept for the
// consumer), the properties (TAGS, KEYS, UNIQ_KEY, user properties) and the
// header's flag/bornTimestamp/reconsumeTimes; bornHost is the connection's
// remote address. Unknown topics are created (autoCreateTopicEnable), also
// in StrictTopics mode. queueId < 0 picks a queue round-robin; queueId ≥
// writeQueueNums answers 1. The response carries msgId = offsetMsgId
// (32 upper-hex: storeHost ip ‖ port ‖ commitLogOffset; comma-joined for a
// batch), queueId and queueOffset (the first one for a batch).
//
// Without a data dir, a send to a queue full of messages a group has not
// consumed answers 14 SERVICE_NOT_AVAILABLE (store.go); delayed and
// transaction-half messages are not refused (they go to system topics).
//
// Special cases, in order (Java SendMessageProcessor):
//   - topic %RETRY%<g> (client-go's fallback when CONSUMER_SEND_MSG_BACK
//     fails): header reconsumeTimes > maxReconsumeTimes reroutes to
//     %DLQ%<g> queue 0 and drops DELAY.
//   - sysFlag tx-prepared + TRAN_MSG=true: stored as a hidden half message
//     (tx.go).
//   - DELAY=n>0 (clamped to 18) or TIMER_DELIVER_MS: stored in
//     SCHEDULE_TOPIC_XXXX queue n-1 with REAL_TOPIC/REAL_QID, delivered
//     later by delay.go with new offsets.
//
// Batch members never get delayed: DELAY stays as a property and the
// message is visible at once, as real RocketMQ 4.9.4 does.

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

const codeMessageIllegal = 13

type sendHeader struct {
	producerGroup     string
	topic             string
	queueID           int
	sysFlag           int32
	bornTimestamp     int64
	flag              int32
	properties        string
	reconsumeTimes    int32
	maxReconsumeTimes int32
	batch             bool
}

func parseSendHeader(req *command, v2 bool) sendHeader {
	k := func(v1, v2key string) string {
		if v2 {
			return v2key
		}
		return v1
	}
	return sendHeader{
		producerGroup:     req.ext(k("producerGroup", "a")),
		topic:             req.ext(k("topic", "b")),
		queueID:           int(extInt(req, k("queueId", "e"), -1)),
		sysFlag:           int32(extInt(req, k("sysFlag", "f"), 0)),
		bornTimestamp:     extInt(req, k("bornTimestamp", "g"), 0),
		flag:              int32(extInt(req, k("flag", "h"), 0)),
		properties:        req.ext(k("properties", "i")),
		reconsumeTimes:    int32(extInt(req, k("reconsumeTimes", "j"), 0)),
		maxReconsumeTimes: int32(extInt(req, k("maxReconsumeTimes", "l"), 16)),
		batch:             req.ext(k("batch", "m")) == "true",
	}
}

var roundRobin atomic.Uint32

// sendTargetLocked resolves (and auto-creates) the topic and queue of a send.
// It returns a response code and remark on failure.
func (s *Server) sendTargetLocked(name string, queueID int) (*topic, int, int16, string) {
	if !validTopic.MatchString(name) {
		return nil, 0, codeSystemError, fmt.Sprintf("topic name %q is invalid", name)
	}
	t := s.ensureTopicLocked(name, s.autoQueues(name), permRW)
	if t.perm&permWrite == 0 {
		return nil, 0, codeNoPermission, fmt.Sprintf("the topic %s is not writable", name)
	}
	if t.writeQueues == 0 {
		return nil, 0, codeSystemError, fmt.Sprintf("topic %s has no writable queue", name)
	}
	if queueID < 0 {
		queueID = int(roundRobin.Add(1) % uint32(t.writeQueues))
	}
	if queueID >= t.writeQueues {
		return nil, 0, codeSystemError, fmt.Sprintf("request queueId[%d] is illegal, topic %s has %d write queues", queueID, name, t.writeQueues)
	}
	return t, queueID, codeSuccess, ""
}

func (s *Server) handleSend(c *conn, req *command) *command {
	h := parseSendHeader(req, false)
	if len(h.properties) > maxPropertiesLength {
		return newResponse(req, codeMessageIllegal, "message properties too long")
	}
	if resp := s.faultSend(req); resp != nil {
		return resp
	}
	// The properties stay with the stored message: clone them out of the
	// request's header string (codec_json.go) so it is not kept alive.
	props := parseProperties(strings.Clone(h.properties))
	props["CLUSTER"] = s.opts.ClusterName // as 4.9.4 stamps every single send
	m := &message{
		queueID:        int32(h.queueID),
		flag:           h.flag,
		sysFlag:        h.sysFlag,
		bornTimestamp:  h.bornTimestamp,
		bornHost:       c.remote,
		reconsumeTimes: h.reconsumeTimes,
		body:           req.Body,
		props:          props,
	}

	s.mu.Lock()
	s.rememberProducerLocked(h.producerGroup, c)
	topicName := h.topic
	if group, ok := strings.CutPrefix(topicName, retryPrefix); ok && h.reconsumeTimes > h.maxReconsumeTimes {
		topicName = dlqPrefix + group
		h.queueID = 0
		delete(m.props, propDelay)
	}
	t, qid, code, remark := s.sendTargetLocked(topicName, h.queueID)
	if t == nil {
		s.mu.Unlock()
		return newResponse(req, code, remark)
	}
	m.queueID = int32(qid)
	if h.sysFlag&sysFlagTxMask == sysFlagTxPrepared && props[propTranMsg] == "true" {
		resp := s.putHalfLocked(req, m, t.name, qid)
		s.mu.Unlock()
		return resp
	}
	if _, _, delayed := s.delayOf(m); !delayed {
		if q := t.queues[qid]; !s.roomLocked(q, max(s.faults.duplicate, 1), wireEstimate(len(m.body), len(h.properties), len(t.name))) {
			resp := s.refusalLocked(req, q)
			s.mu.Unlock()
			return resp
		}
	}
	stored := s.putLocked(t, m)
	resp := newResponse(req, codeSuccess, "")
	resp.setExt("msgId", stored.offsetMsgID())
	resp.setExt("queueId", strconv.Itoa(qid))
	resp.setExt("queueOffset", strconv.FormatInt(stored.queueOffset, 10))
	resp.setExt("MSG_REGION", "DefaultRegion")
	resp.setExt("TRACE_ON", "true")
	s.mu.Unlock()
	return resp
}

// wireEstimate is about the size of a message's encoding (message.go
// sealInto: 91 bytes of fixed fields plus the variable ones, a little more
// for the properties the broker adds).
func wireEstimate(body, props, topic int) int { return 150 + body + props + topic }

// putLocked stores m in t (or schedules it when it carries a delay) and
// returns the message as stored.
func (s *Server) putLocked(t *topic, m *message) *message {
	if due, level, ok := s.delayOf(m); ok {
		m.props[propRealTopic] = t.name
		m.props[propRealQueueID] = strconv.Itoa(int(m.queueID))
		m.queueID = int32(level - 1)
		m.dueMs = due.UnixMilli()
		s.appendLocked(s.topics[scheduleTopic], m)
		s.scheduleLocked(m, due)
		return m
	}
	s.appendLocked(t, m)
	for range s.faults.duplicate - 1 {
		s.appendLocked(t, m.clone())
	}
	return m
}

func (s *Server) handleSendBatch(c *conn, req *command) *command {
	h := parseSendHeader(req, true)
	if resp := s.faultSend(req); resp != nil {
		return resp
	}
	records, err := decodeBatch(req.Body)
	if err != nil || len(records) == 0 {
		return newResponse(req, codeMessageIllegal, "malformed batch body")
	}
	if strings.HasPrefix(h.topic, retryPrefix) {
		return newResponse(req, codeMessageIllegal, "batch request does not support retry group")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rememberProducerLocked(h.producerGroup, c)
	t, qid, code, remark := s.sendTargetLocked(h.topic, h.queueID)
	if t == nil {
		return newResponse(req, code, remark)
	}
	ids := make([]byte, 0, 33*len(records)*max(s.faults.duplicate, 1))
	var first int64
	msgs := make([]message, len(records))
	arenaSize := 0
	for _, r := range records {
		arenaSize += wireEstimate(len(r.body), len(r.rawProps), len(t.name))
	}
	copies := max(s.faults.duplicate, 1)
	if q := t.queues[qid]; !s.roomLocked(q, len(records)*copies, arenaSize*copies) {
		return s.refusalLocked(req, q)
	}
	s.arena = make([]byte, 0, arenaSize*max(s.faults.duplicate, 1))
	defer func() { s.arena = nil }()
	for i, r := range records {
		m := &msgs[i]
		*m = message{
			queueID:       int32(qid),
			flag:          r.flag,
			sysFlag:       h.sysFlag &^ sysFlagCompressed,
			bornTimestamp: h.bornTimestamp,
			bornHost:      c.remote,
			body:          r.body,
			props:         r.props,
		}
		// DELAY on batch members is ignored (real 4.9.4 behaviour).
		s.appendLocked(t, m)
		for range s.faults.duplicate - 1 {
			s.appendLocked(t, m.clone())
		}
		if i == 0 {
			first = m.queueOffset
		} else {
			ids = append(ids, ',')
		}
		ids = appendOffsetMsgID(ids, m.storeHost, m.commitLogOffset)
	}
	resp := newResponse(req, codeSuccess, "")
	resp.setExt("msgId", string(ids))
	resp.setExt("queueId", strconv.Itoa(qid))
	resp.setExt("queueOffset", strconv.FormatInt(first, 10))
	resp.setExt("MSG_REGION", "DefaultRegion")
	resp.setExt("TRACE_ON", "true")
	return resp
}
