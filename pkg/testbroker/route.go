package testbroker

// Behavior: GET_ROUTEINFO_BY_TOPIC (105), answered by the name server.
//
// The route lists one broker (BrokerName, id 0 = master, the advertised
// broker IP:port) and one queueData with readQueueNums == writeQueueNums
// and perm 6 (RW; TBW102 keeps 7). brokerAddrs is always present and
// compact, because client-go parses it by hand. Unknown topics are created
// with DefaultQueues (%RETRY%/%DLQ% topics with 1 queue) unless StrictTopics,
// which answers 17 TOPIC_NOT_EXIST like real RocketMQ; TBW102 and
// %RETRY%<group> always resolve (a consumer needs its retry route before
// its first heartbeat).

import (
	"encoding/json"
	"fmt"
	"strings"
)

type queueData struct {
	BrokerName     string `json:"brokerName"`
	ReadQueueNums  int    `json:"readQueueNums"`
	WriteQueueNums int    `json:"writeQueueNums"`
	Perm           int    `json:"perm"`
	TopicSynFlag   int    `json:"topicSynFlag"`
}

type brokerData struct {
	Cluster     string            `json:"cluster"`
	BrokerName  string            `json:"brokerName"`
	BrokerAddrs map[string]string `json:"brokerAddrs"`
}

type topicRouteData struct {
	OrderTopicConf    string              `json:"orderTopicConf"`
	QueueDatas        []queueData         `json:"queueDatas"`
	BrokerDatas       []brokerData        `json:"brokerDatas"`
	FilterServerTable map[string][]string `json:"filterServerTable"`
}

func (s *Server) handleGetRoute(c *conn, req *command) *command {
	name := req.ext("topic")
	s.mu.Lock()
	t := s.topicLocked(name)
	if t == nil && validTopic.MatchString(name) &&
		(!s.opts.StrictTopics || strings.HasPrefix(name, retryPrefix)) {
		t = s.ensureTopicLocked(name, s.autoQueues(name), permRW)
	}
	var route topicRouteData
	if t != nil {
		route = s.routeLocked(t)
	}
	s.mu.Unlock()
	if t == nil {
		return newResponse(req, codeTopicNotExist,
			fmt.Sprintf("No topic route info in name server for the topic: %s", name))
	}
	resp := newResponse(req, codeSuccess, "")
	resp.Body, _ = json.Marshal(route)
	return resp
}

func (s *Server) routeLocked(t *topic) topicRouteData {
	return topicRouteData{
		QueueDatas: []queueData{{
			BrokerName:     s.opts.BrokerName,
			ReadQueueNums:  t.readQueues,
			WriteQueueNums: t.writeQueues,
			Perm:           t.perm,
		}},
		BrokerDatas: []brokerData{{
			Cluster:     s.opts.ClusterName,
			BrokerName:  s.opts.BrokerName,
			BrokerAddrs: map[string]string{"0": s.brokerAddr},
		}},
		FilterServerTable: map[string][]string{},
	}
}
