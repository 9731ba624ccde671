package mq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2/admin"
)

// TopicSpec is a topic and its queue count (read = write queues).
type TopicSpec struct {
	Name   string
	Queues int
}

// ensureMu serializes EnsureTopics: client-go's admin always uses the
// process-wide DEFAULT client instance, and one admin's Close shuts it down
// under another one's feet.
var ensureMu sync.Mutex

// EnsureTopics creates (or updates to the given queue count) every topic on
// every broker master, then waits until the name server routes each one.
//
// client-go's admin.CreateTopic needs a broker address and ignores the
// broker's answer, so: the brokers are cfg.BrokerAddrs when set, otherwise
// the masters in the name server's route of TBW102 (the default topic every
// broker registers when autoCreateTopicEnable is on, as in the embedded
// broker and deploy/broker.conf), otherwise those in the routes of the topics
// themselves. Success is judged by the route, not by CreateTopic.
func EnsureTopics(ctx context.Context, cfg Config, topics []TopicSpec) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	quietClientLog(nil)
	ensureMu.Lock()
	defer ensureMu.Unlock()
	brokers := slices.Clone(cfg.BrokerAddrs)
	if len(brokers) == 0 {
		names := []string{"TBW102"}
		for _, t := range topics {
			names = append(names, t.Name)
		}
		for _, name := range names {
			r, err := queryRoute(ctx, cfg.NameServers, name)
			if err == nil {
				brokers = r.masters()
			}
			if len(brokers) > 0 {
				break
			}
		}
		if len(brokers) == 0 {
			return fmt.Errorf("ensure topics: no broker found via name servers %v (set the broker address)", cfg.NameServers)
		}
	}
	opts := []admin.AdminOption{admin.WithResolver(cfg.resolver())}
	if cred, ok := cfg.credentials(); ok {
		opts = append(opts, admin.WithCredentials(cred))
	}
	adm, err := admin.NewAdmin(opts...)
	if err != nil {
		return fmt.Errorf("ensure topics: new admin: %w", err)
	}
	defer adm.Close()
	for _, t := range topics {
		for _, b := range brokers {
			err := adm.CreateTopic(ctx,
				admin.WithTopicCreate(t.Name),
				admin.WithBrokerAddrCreate(b),
				admin.WithReadQueueNums(t.Queues),
				admin.WithWriteQueueNums(t.Queues),
			)
			if err != nil {
				return fmt.Errorf("create topic %s on %s: %w", t.Name, b, err)
			}
		}
	}
	for _, t := range topics {
		if err := waitRoute(ctx, cfg.NameServers, t); err != nil {
			return err
		}
	}
	return nil
}

func waitRoute(ctx context.Context, nameServers []string, t TopicSpec) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var last error
	for {
		r, err := queryRoute(ctx, nameServers, t.Name)
		if err == nil {
			if n := r.writeQueues(); n >= t.Queues {
				return nil
			} else {
				err = fmt.Errorf("%d write queues, want %d", n, t.Queues)
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s not routed after create: %w", t.Name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

type routeData struct {
	QueueDatas []struct {
		BrokerName     string `json:"brokerName"`
		ReadQueueNums  int    `json:"readQueueNums"`
		WriteQueueNums int    `json:"writeQueueNums"`
		Perm           int    `json:"perm"`
	} `json:"queueDatas"`
	BrokerDatas []struct {
		BrokerName  string            `json:"brokerName"`
		BrokerAddrs map[string]string `json:"brokerAddrs"`
	} `json:"brokerDatas"`
}

func (r routeData) masters() []string {
	var out []string
	for _, b := range r.BrokerDatas {
		if a := b.BrokerAddrs["0"]; a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// brokerQueues is a broker master and the number of read queues of a topic
// on it (queue IDs 0..Queues-1).
type brokerQueues struct {
	Addr   string
	Queues int
}

// readQueues lists, per broker master, the readable queues of the topic.
// Brokers without a master in the route (master down) are left out.
func (r routeData) readQueues() []brokerQueues {
	master := map[string]string{}
	for _, b := range r.BrokerDatas {
		if a := b.BrokerAddrs["0"]; a != "" {
			master[b.BrokerName] = a
		}
	}
	var out []brokerQueues
	for _, q := range r.QueueDatas {
		if a := master[q.BrokerName]; a != "" && q.Perm&4 != 0 && q.ReadQueueNums > 0 { // PERM_READ
			out = append(out, brokerQueues{Addr: a, Queues: q.ReadQueueNums})
		}
	}
	return out
}

func (r routeData) writeQueues() int {
	n := 0
	for _, q := range r.QueueDatas {
		if q.Perm&2 != 0 { // PERM_WRITE
			n += q.WriteQueueNums
		}
	}
	return n
}

// The Java name server writes fastjson, whose maps with integer keys are
// not JSON ({0:"ip:port"}); quote such keys before decoding.
var bareIntKey = regexp.MustCompile(`([{,])\s*(\d+)\s*:`)

func jsonUnmarshalRoute(body []byte, r *routeData) error {
	return json.Unmarshal(bareIntKey.ReplaceAll(body, []byte(`$1"$2":`)), r)
}

const codeGetRouteInfo = 105

// queryRoute asks the name servers (first that answers) for topic's route
// with one GET_ROUTEINFO_BY_TOPIC request. client-go keeps its route data
// internal, hence remoting.go.
func queryRoute(ctx context.Context, nameServers []string, topic string) (routeData, error) {
	var errs []error
	for _, ns := range nameServers {
		// Name servers do not check ACL: the request goes unsigned.
		body, err := remotingCall(ctx, ns, Config{}, codeGetRouteInfo, map[string]string{"topic": topic})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var r routeData
		if err := jsonUnmarshalRoute(body, &r); err != nil {
			return routeData{}, fmt.Errorf("route of %s from %s: %w", topic, ns, err)
		}
		return r, nil
	}
	return routeData{}, fmt.Errorf("route of %s: %w", topic, errors.Join(errs...))
}
