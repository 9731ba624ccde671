package testbroker

// Behavior: client registry. HEART_BEAT (34), UNREGISTER_CLIENT (35),
// GET_CONSUMER_LIST_BY_GROUP (38) and the broker→client
// NOTIFY_CONSUMER_IDS_CHANGED (40).
//
// A heartbeat is the client's full state: its clientID is bound to the
// connection, it joins every consumer group listed (model, subscriptions)
// and leaves every group it no longer lists; producer groups remember the
// connection (for transaction checks). Consumer groups get %RETRY%<group>
// (1 queue) created. When a group's membership changes, every member is sent
// 40 (ext consumerGroup, flag 0) on its own connection so it rebalances now
// rather than at the 20 s tick. A closed connection removes its client from
// every group and releases its orderly locks (client-go never sends 35).
// 38 lists every live member, sorted, including the caller; an unknown or
// empty group answers 1 like Java (the client ignores the code).

import (
	"encoding/json"
	"maps"
	"slices"
	"sync/atomic"
)

type consumerGroup struct {
	name    string
	members map[string]*member // clientID → member
}

type member struct {
	conn  *conn
	model string                // CLUSTERING | BROADCASTING
	subs  map[string]*subscript // topic → subscription
}

type subscript struct {
	expr   string
	filter tagFilter
}

type notification struct {
	group string
	conns []*conn
}

type heartbeatBody struct {
	ClientID      string `json:"clientID"`
	ProducerDatas []struct {
		GroupName string `json:"groupName"`
	} `json:"producerDataSet"`
	ConsumerDatas []struct {
		GroupName     string `json:"groupName"`
		MessageModel  string `json:"messageModel"`
		Subscriptions []struct {
			Topic     string `json:"topic"`
			SubString string `json:"subString"`
			ExpType   string `json:"expressionType"`
		} `json:"subscriptionDataSet"`
	} `json:"consumerDataSet"`
}

func (s *Server) handleHeartbeat(c *conn, req *command) *command {
	var hb heartbeatBody
	if err := json.Unmarshal(req.Body, &hb); err != nil || hb.ClientID == "" {
		return newResponse(req, codeSystemError, "malformed heartbeat body")
	}
	s.mu.Lock()
	var notify []notification
	if c.clientID != "" && c.clientID != hb.ClientID {
		notify = s.removeClientLocked(c, c.clientID)
	}
	c.clientID = hb.ClientID
	for _, p := range hb.ProducerDatas {
		s.rememberProducerLocked(p.GroupName, c)
	}
	listed := map[string]bool{}
	for _, cd := range hb.ConsumerDatas {
		if cd.GroupName == "" {
			continue
		}
		listed[cd.GroupName] = true
		g := s.groups[cd.GroupName]
		if g == nil {
			g = &consumerGroup{name: cd.GroupName, members: map[string]*member{}}
			s.groups[cd.GroupName] = g
		}
		m := &member{conn: c, model: cd.MessageModel, subs: map[string]*subscript{}}
		for _, sd := range cd.Subscriptions {
			sub := &subscript{expr: sd.SubString}
			if sd.ExpType == "" || sd.ExpType == "TAG" {
				sub.filter = s.tagFilterLocked(sd.SubString)
			}
			m.subs[sd.Topic] = sub
		}
		old, existed := g.members[hb.ClientID]
		g.members[hb.ClientID] = m
		s.touchGroupLocked(cd.GroupName) // its subscriptions may have changed: floors again
		if !existed || old.conn != c {
			// The joining client rebalances right after its heartbeat
			// (push consumer Start); notifying it too only adds a concurrent
			// rebalance that races client-go's own shutdown path.
			notify = append(notify, s.notificationLocked(g, c))
		}
		retry := retryPrefix + cd.GroupName
		if validTopic.MatchString(retry) {
			s.ensureTopicLocked(retry, 1, permRW)
		}
	}
	for name, g := range s.groups {
		if m, ok := g.members[hb.ClientID]; ok && !listed[name] && m.conn == c {
			delete(g.members, hb.ClientID)
			s.touchGroupLocked(name)
			notify = append(notify, s.notificationLocked(g, nil))
		}
	}
	s.mu.Unlock()
	s.sendNotifications(notify)
	return newResponse(req, codeSuccess, "")
}

func (s *Server) handleUnregister(c *conn, req *command) *command {
	id := req.ext("clientID")
	group := req.ext("consumerGroup")
	s.mu.Lock()
	var notify []notification
	if g := s.groups[group]; g != nil {
		if _, ok := g.members[id]; ok {
			delete(g.members, id)
			s.touchGroupLocked(group)
			s.releaseLocksLocked(group, id)
			notify = append(notify, s.notificationLocked(g, nil))
		}
	}
	if pg := req.ext("producerGroup"); pg != "" {
		delete(s.producers[pg], c)
	}
	s.mu.Unlock()
	s.sendNotifications(notify)
	return newResponse(req, codeSuccess, "")
}

func (s *Server) handleConsumerList(c *conn, req *command) *command {
	s.mu.Lock()
	var ids []string
	if g := s.groups[req.ext("consumerGroup")]; g != nil {
		ids = slices.Sorted(maps.Keys(g.members))
	}
	s.mu.Unlock()
	if len(ids) == 0 {
		return newResponse(req, codeSystemError, "no consumer for this group, "+req.ext("consumerGroup"))
	}
	resp := newResponse(req, codeSuccess, "")
	resp.Body, _ = json.Marshal(map[string][]string{"consumerIdList": ids})
	return resp
}

func (s *Server) rememberProducerLocked(group string, c *conn) {
	if group == "" {
		return
	}
	conns := s.producers[group]
	if conns == nil {
		conns = map[*conn]struct{}{}
		s.producers[group] = conns
	}
	conns[c] = struct{}{}
}

// removeClientLocked drops clientID (as bound to c) from every group and
// releases its locks; it returns the notifications to send.
func (s *Server) removeClientLocked(c *conn, clientID string) []notification {
	var notify []notification
	for name, g := range s.groups {
		if m, ok := g.members[clientID]; ok && m.conn == c {
			delete(g.members, clientID)
			s.touchGroupLocked(name)
			s.releaseLocksLocked(name, clientID)
			notify = append(notify, s.notificationLocked(g, nil))
		}
	}
	return notify
}

// subscriptionLocked is the tag filter for (group, topic) from heartbeats;
// nil (match all) when unknown.
func (s *Server) subscriptionLocked(group, topicName string) tagFilter {
	g := s.groups[group]
	if g == nil {
		return nil
	}
	for _, m := range g.members {
		if sub := m.subs[topicName]; sub != nil {
			return sub.filter
		}
	}
	return nil
}

// subscribesClustering reports whether a live clustering member of g
// subscribes to topicName (its messages are then held for g: store.go).
func (g *consumerGroup) subscribesClustering(topicName string) bool {
	for _, m := range g.members {
		if m.model != "BROADCASTING" && m.subs[topicName] != nil {
			return true
		}
	}
	return false
}

// notificationLocked addresses every member of g except the one on skip.
func (s *Server) notificationLocked(g *consumerGroup, skip *conn) notification {
	n := notification{group: g.name}
	for _, m := range g.members {
		if m.conn != skip {
			n.conns = append(n.conns, m.conn)
		}
	}
	return n
}

// sendNotifications sends 40 NOTIFY_CONSUMER_IDS_CHANGED; called without
// s.mu (writes may block).
func (s *Server) sendNotifications(ns []notification) {
	for _, n := range ns {
		for _, c := range n.conns {
			c.write(&command{Code: 40, Version: 317, Opaque: nextServerOpaque(), ExtFields: map[string]string{"consumerGroup": n.group}})
		}
	}
}

var serverOpaque atomic.Int32

func nextServerOpaque() int32 { return serverOpaque.Add(1) }
