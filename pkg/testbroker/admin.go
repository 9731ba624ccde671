package testbroker

// Behavior: admin requests.
//   - 17 UPDATE_AND_CREATE_TOPIC (broker): ext topic, readQueueNums,
//     writeQueueNums (default 8, as client-go's admin), perm (default 6).
//     Creates the topic or updates its queue counts and perm; the route sees
//     it at once (one process). client-go ignores the reply code.
//   - 215 DELETE_TOPIC_IN_BROKER / 216 DELETE_TOPIC_IN_NAMESRV: ext topic;
//     drops the topic, its messages and its committed offsets (one store, so
//     either code deletes everything).
//   - 206 GET_ALL_TOPIC_LIST_FROM_NAMESERVER: body {"topicList":[...]}.

import (
	"encoding/json"
	"maps"
	"slices"
)

func (s *Server) handleCreateTopic(c *conn, req *command) *command {
	name := req.ext("topic")
	if !validTopic.MatchString(name) {
		return newResponse(req, codeSystemError, "topic name invalid: "+name)
	}
	read := int(extInt(req, "readQueueNums", 8))
	write := int(extInt(req, "writeQueueNums", int64(read)))
	perm := int(extInt(req, "perm", permRW))
	if read <= 0 || write <= 0 || read > 1024 || write > 1024 {
		return newResponse(req, codeSystemError, "queue numbers out of range")
	}
	s.mu.Lock()
	t := s.createTopicLocked(name, read, write)
	if t.perm != perm {
		t.perm = perm
		s.logTopicLocked(t)
	}
	s.mu.Unlock()
	return newResponse(req, codeSuccess, "")
}

// createTopicLocked creates name or updates its queue counts.
func (s *Server) createTopicLocked(name string, read, write int) *topic {
	t := s.ensureTopicLocked(name, max(read, write), permRW)
	s.resizeTopicLocked(t, read, write)
	return t
}

func (s *Server) handleDeleteTopic(c *conn, req *command) *command {
	name := req.ext("topic")
	s.mu.Lock()
	s.deleteTopicLocked(name)
	s.mu.Unlock()
	return newResponse(req, codeSuccess, "")
}

func (s *Server) deleteTopicLocked(name string) {
	t := s.topics[name]
	if t == nil || name == defaultTopicTBW102 || name == scheduleTopic {
		return
	}
	for _, q := range t.queues {
		s.dropLocked(q, len(q.idx))
		q.deleted = true
		s.wakeLocked(q) // held pulls see deleted and answer 17
	}
	delete(s.topics, name)
	// Segments may keep its messages a while (shared with other queues):
	// a restart must not bring them back.
	if s.persist != nil {
		s.tombstones[name] = s.nextCommitLog
	}
	s.logTopicDeleteLocked(name, s.nextCommitLog)
	for k := range s.offsets {
		if k.topic == name {
			delete(s.offsets, k)
		}
	}
	s.floorGen++
}

func (s *Server) handleTopicList(c *conn, req *command) *command {
	s.mu.Lock()
	names := slices.Sorted(maps.Keys(s.topics))
	s.mu.Unlock()
	resp := newResponse(req, codeSuccess, "")
	resp.Body, _ = json.Marshal(map[string]any{"topicList": names, "brokerAddr": ""})
	return resp
}
