package testbroker

// Behavior: CONSUMER_SEND_MSG_BACK (36), retry and dead-letter.
//
// Ext: group, offset (the consumed message's commitLogOffset), delayLevel,
// originMsgId, originTopic, maxReconsumeTimes (client-go sends 16 by
// default). The message is looked up by commitLogOffset in originTopic and
// %RETRY%<group> (and, with a data dir, in the whole commit log); not found
// → 1, and client-go falls back to a plain
// SEND into %RETRY%<group> (send.go). Otherwise a copy gets RETRY_TOPIC
// (the original topic, if not already set), ORIGIN_MESSAGE_ID and
// reconsumeTimes+1 and goes to:
//   - %DLQ%<group> queue 0, at once, when the consumed message's
//     reconsumeTimes ≥ maxReconsumeTimes or delayLevel < 0 (orderly);
//   - %RETRY%<group> queue 0 through delay level (delayLevel == 0 ?
//     3 + reconsumeTimes : delayLevel), scaled by Options.DelayScale.
// The copy gets a new queueOffset and commitLogOffset; UNIQ_KEY is kept, so
// the consumer sees the same msgId with ReconsumeTimes+1.

import (
	"strconv"
	"strings"
)

func (s *Server) handleSendBack(c *conn, req *command) *command {
	group := req.ext("group")
	clo := extInt(req, "offset", -1)
	delayLevel := int(extInt(req, "delayLevel", 0))
	maxTimes := int32(extInt(req, "maxReconsumeTimes", 16))
	if !validTopic.MatchString(retryPrefix + group) {
		return newResponse(req, codeSystemError, "invalid group "+strconv.Quote(group))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	src := s.consumedMessageLocked(clo, req.ext("originTopic"), retryPrefix+group)
	if src == nil {
		return newResponse(req, codeSystemError, "look message by offset failed, "+strconv.FormatInt(clo, 10))
	}
	m := src.clone()
	m.storeTimestamp = 0
	m.bornHost = c.remote
	if m.props[propRetryTopic] == "" {
		m.props[propRetryTopic] = src.topic
	}
	if m.props[propOriginMessageID] == "" {
		origin := req.ext("originMsgId")
		if origin == "" {
			origin = src.msgID()
		}
		m.props[propOriginMessageID] = strings.Clone(origin) // not the whole request header
	}
	delete(m.props, propRealTopic)
	delete(m.props, propRealQueueID)
	delete(m.props, propTimerDeliverMS)
	m.reconsumeTimes = src.reconsumeTimes + 1
	m.queueID = 0

	if src.reconsumeTimes >= maxTimes || delayLevel < 0 {
		delete(m.props, propDelay)
		t := s.ensureTopicLocked(dlqPrefix+group, 1, permRW)
		s.appendLocked(t, m)
		s.log.Info("message moved to DLQ", "group", group, "msg_id", m.msgID(), "reconsume_times", src.reconsumeTimes)
		return newResponse(req, codeSuccess, "")
	}
	if delayLevel == 0 {
		delayLevel = 3 + int(src.reconsumeTimes)
	}
	m.props[propDelay] = strconv.Itoa(min(delayLevel, maxDelayLevel))
	t := s.ensureTopicLocked(retryPrefix+group, 1, permRW)
	s.putLocked(t, m)
	return newResponse(req, codeSuccess, "")
}

// consumedMessageLocked finds the message with commit-log offset clo: in
// the queues of the topics a consumer got it from (client-go names the
// original topic also for a message of %RETRY%<group>), else, with a data
// dir, in the commit log even if retention dropped it from its queue.
func (s *Server) consumedMessageLocked(clo int64, topics ...string) *message {
	if q, off, ok := s.searchCommitLogLocked(clo, topics...); ok {
		w, err := s.wireLocked(q, off)
		if err == nil {
			if m, err := decodeStored(w); err == nil {
				return m
			}
		}
		s.log.Error("send-back: reading the message failed", "commit_log_offset", clo, "err", err)
		return nil
	}
	if s.persist != nil {
		return s.messageAtCommitLogLocked(clo)
	}
	return nil
}
