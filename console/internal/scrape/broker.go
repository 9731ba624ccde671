package scrape

import (
	"context"
	"time"

	"seckill/pkg/mq"
)

// Broker is what one probe of the brokers saw.
type Broker struct {
	// Offsets sums, per topic, the max offset of every readable queue: the
	// messages ever stored in it. A topic no broker has is absent.
	Offsets map[string]int64
	Took    time.Duration
}

// ProbeBroker asks the name servers for the routes of topics and each
// broker for the max offsets of their queues: it succeeds only when a name
// server and every broker holding the topics answer.
func ProbeBroker(ctx context.Context, cfg mq.Config, topics []string) (Broker, error) {
	start := time.Now()
	snap, err := mq.TakeSnapshot(ctx, cfg, topics...)
	if err != nil {
		return Broker{}, err
	}
	b := Broker{Offsets: map[string]int64{}, Took: time.Since(start)}
	for _, q := range snap {
		b.Offsets[q.Topic] += q.Offset
	}
	return b, nil
}
