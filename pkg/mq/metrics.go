package mq

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the message metrics of one service. A nil *Metrics records nothing.
type Metrics struct {
	consumed *prometheus.CounterVec   // group, topic, result
	sent     *prometheus.CounterVec   // topic, mode, result
	duration *prometheus.HistogramVec // group
	lag      *prometheus.GaugeVec     // group
	batched  *prometheus.CounterVec   // group, tag, result
}

// Results of a consumed message (label result).
const (
	resultOK        = "ok"
	resultRetry     = "retry"
	resultPermanent = "permanent"
	resultPanic     = "panic"
	resultDead      = "dlq" // a poison message past PoisonRetries, sent to %DLQ%<group>
)

// NewMetrics registers the message metrics of service on reg:
// <svc>_messages_consumed_total{group,topic,result}, <svc>_messages_sent_total{topic,mode,result},
// <svc>_consume_duration_seconds{group}, <svc>_consumer_lag{group} and
// <svc>_messages_batched_total{group,tag,result}. The
// lag is the group's whole backlog as the brokers see it, refreshed every
// 5 s by each consumer; broadcasting groups have none. A nil reg registers
// nothing: the metrics are kept but not exported (for tests and tools).
func NewMetrics(reg prometheus.Registerer, service string) *Metrics {
	m := &Metrics{
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: service + "_messages_consumed_total",
			Help: "Messages handled by consumer group, topic and result (ok, retry, permanent, dlq, panic).",
		}, []string{"group", "topic", "result"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: service + "_messages_sent_total",
			Help: "Messages sent by topic, mode (sync, async, oneway, batch) and result (ok, error).",
		}, []string{"topic", "mode", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    service + "_consume_duration_seconds",
			Help:    "Handler duration per consumer group.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"group"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: service + "_consumer_lag",
			Help: "Messages in the brokers not yet consumed by the clustering group (max offset minus committed offset, all queues of its topics and of its retry topic; every process of the group reports the same figure).",
		}, []string{"group"}),
		batched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: service + "_messages_batched_total",
			Help: "Messages given to the group's batch handler, by tag and result: batched (handled in the batch) or fallback (the batch failed; each message went to the handler alone).",
		}, []string{"group", "tag", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.consumed, m.sent, m.duration, m.lag, m.batched)
	}
	return m
}

func (m *Metrics) consumedInc(group, topic, result string) {
	if m != nil {
		m.consumed.WithLabelValues(group, topic, result).Inc()
	}
}

func (m *Metrics) batchedAdd(group, tag string, ok bool, n int) {
	if m == nil {
		return
	}
	result := "batched"
	if !ok {
		result = "fallback"
	}
	m.batched.WithLabelValues(group, tag, result).Add(float64(n))
}

func (m *Metrics) sentAdd(topic, mode string, err error, n int) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.sent.WithLabelValues(topic, mode, result).Add(float64(n))
}

func (m *Metrics) observe(group string, seconds float64) {
	if m != nil {
		m.duration.WithLabelValues(group).Observe(seconds)
	}
}

func (m *Metrics) setLag(group string, lag int64) {
	if m != nil {
		m.lag.WithLabelValues(group).Set(float64(lag))
	}
}

func (m *Metrics) deleteLag(group string) {
	if m != nil {
		m.lag.DeleteLabelValues(group)
	}
}
