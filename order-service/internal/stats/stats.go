// Package stats consumes the rejected-attempt statistics stream
// (ORDER_STATS, GID-order-stats). The stream is sent oneway, so it may lose
// messages: it feeds a counter, never a decision.
package stats

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Counter counts rejected order attempts by reason.
type Counter struct {
	rejected *prometheus.CounterVec
}

// NewCounter registers order_rejected_attempts_total{reason} on reg.
func NewCounter(reg prometheus.Registerer) *Counter {
	c := &Counter{rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "order_rejected_attempts_total",
		Help: "Rejected order attempts seen on the ORDER_STATS stream (oneway, may undercount).",
	}, []string{"reason"})}
	reg.MustRegister(c.rejected)
	return c
}

// reasons bounds the label values: anything else is counted as "other".
var reasons = map[string]bool{"sold_out": true, "limit_exceeded": true, "unknown_product": true}

// Handle counts one events.RejectedAttempt.
func (c *Counter) Handle(_ context.Context, m mq.Message) error {
	var ev events.RejectedAttempt
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		return fmt.Errorf("decode rejected attempt %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	reason := ev.Reason
	if !reasons[reason] {
		reason = "other"
	}
	c.rejected.WithLabelValues(reason).Inc()
	return nil
}
