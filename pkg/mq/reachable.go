package mq

import (
	"context"
	"fmt"
)

// Reachable checks that the broker serving topic answers: the name servers
// give topic's route (the first that answers), and every master holding a
// readable queue of it answers a max-offset request for its queue 0. That is
// what producing and consuming topic need, and costs one connection per
// name server tried and per master (readiness probes call it every few
// seconds).
func Reachable(ctx context.Context, cfg Config, topic string) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	r, err := queryRoute(ctx, cfg.NameServers, topic)
	if err != nil {
		return err
	}
	masters := r.readQueues()
	if len(masters) == 0 {
		return fmt.Errorf("route of %s: no master with a readable queue", topic)
	}
	for _, bq := range masters {
		if err := maxOffsetAnswers(ctx, bq.Addr, cfg, topic); err != nil {
			return fmt.Errorf("broker %s, %s queue 0: %w", bq.Addr, topic, err)
		}
	}
	return nil
}

func maxOffsetAnswers(ctx context.Context, addr string, cfg Config, topic string) error {
	c, err := dialRemoting(ctx, addr, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = offsetCall(c, codeGetMaxOffset, map[string]string{"topic": topic, "queueId": "0"})
	return err
}
