package testbroker

// Behavior: LOCK_BATCH_MQ (41) / UNLOCK_BATCH_MQ (42) for orderly
// clustering consumers.
//
// Body {"consumerGroup","clientId","mqSet":[{topic,brokerName,queueId}]}.
// 41 grants each queue that is free, already held by clientId, or whose lock
// expired (Options.LockExpiry since the last grant/renewal), and answers
// {"lockOKMQSet":[...]} echoing the requested entries exactly (the client
// compares structs). 42 releases the caller's queues. Locks are also released
// when the client leaves its group (connection closed or heartbeat no longer
// lists the group).

import (
	"encoding/json"
	"time"
)

type mqRef struct {
	Topic      string `json:"topic"`
	BrokerName string `json:"brokerName"`
	QueueID    int    `json:"queueId"`
}

type lockKey struct {
	group, topic string
	queue        int
}

type lockEntry struct {
	clientID string
	expires  time.Time
}

type lockBody struct {
	ConsumerGroup string  `json:"consumerGroup"`
	ClientID      string  `json:"clientId"`
	MQSet         []mqRef `json:"mqSet"`
}

func (s *Server) handleLock(c *conn, req *command) *command {
	var b lockBody
	if err := json.Unmarshal(req.Body, &b); err != nil || b.ConsumerGroup == "" || b.ClientID == "" {
		return newResponse(req, codeSystemError, "malformed lock body")
	}
	s.mu.Lock()
	now := s.now()
	ok := []mqRef{}
	for _, mq := range b.MQSet {
		k := lockKey{b.ConsumerGroup, mq.Topic, mq.QueueID}
		e, held := s.locks[k]
		if held && e.clientID != b.ClientID && now.Before(e.expires) {
			continue
		}
		s.locks[k] = lockEntry{clientID: b.ClientID, expires: now.Add(s.opts.LockExpiry)}
		ok = append(ok, mq)
	}
	s.mu.Unlock()
	resp := newResponse(req, codeSuccess, "")
	resp.Body, _ = json.Marshal(map[string][]mqRef{"lockOKMQSet": ok})
	return resp
}

func (s *Server) handleUnlock(c *conn, req *command) *command {
	var b lockBody
	if err := json.Unmarshal(req.Body, &b); err != nil {
		return newResponse(req, codeSystemError, "malformed unlock body")
	}
	s.mu.Lock()
	for _, mq := range b.MQSet {
		k := lockKey{b.ConsumerGroup, mq.Topic, mq.QueueID}
		if e, ok := s.locks[k]; ok && e.clientID == b.ClientID {
			delete(s.locks, k)
		}
	}
	s.mu.Unlock()
	return newResponse(req, codeSuccess, "")
}

func (s *Server) releaseLocksLocked(group, clientID string) {
	for k, e := range s.locks {
		if k.group == group && e.clientID == clientID {
			delete(s.locks, k)
		}
	}
}
