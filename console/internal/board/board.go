// Package board turns two successive reads of the running system (Scrape)
// into what the console page shows (Board): rates from counter deltas,
// intake p99 from histogram bucket deltas, consumer groups discovered from
// the metrics' group label, per-product numbers, and what is down. Poller
// reads the system every interval and hands each Board to the page.
package board

import (
	"cmp"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"

	"seckill/console/internal/scrape"
)

// Source is one service the console reads: Name is also the prefix of its
// pkg/mq metrics (<name>_messages_consumed_total).
type Source struct {
	Name string
	URL  string
}

// ServiceScrape is one service's /metrics read.
type ServiceScrape struct {
	Source
	Families scrape.Families // nil when Err is set
	Err      error
	Took     time.Duration
}

// Scrape is everything one poll read.
type Scrape struct {
	At          time.Time
	Services    []ServiceScrape // in the order the page shows them
	Products    []scrape.Product
	ProductsErr error
	Counts      map[string]map[string]int64 // product → order status → orders
	CountsErr   error
	NameSrv     string
	Broker      scrape.Broker
	BrokerErr   error
	// Groups are every consumer group seen so far, group → service, so a
	// group of a service that is down stays on the page.
	Groups map[string]string
}

// Board is one update of the page. A nil number is unknown: the page shows
// "n/a" (its source is down, or the metric is not exported).
type Board struct {
	Seq           int64     `json:"seq"`
	At            time.Time `json:"at"`
	WindowS       float64   `json:"window_s"` // the seconds rates are over; 0 on the first read
	ConsumeRate   float64   `json:"consume_rate"`
	Services      []Service `json:"services"`
	Broker        Broker    `json:"broker"`
	Front         Front     `json:"front"`
	Groups        []Group   `json:"groups"`
	Products      []Product `json:"products"`
	ProductsError string    `json:"products_error,omitempty"`
	CountsError   string    `json:"counts_error,omitempty"`
	Outbox        Outbox    `json:"outbox"`
	Outcomes      []Outcome `json:"outcomes"`
}

// Service is whether a service's /metrics answered.
type Service struct {
	Name   string  `json:"name"`
	URL    string  `json:"url"`
	Up     bool    `json:"up"`
	Error  string  `json:"error,omitempty"`
	TookMS float64 `json:"took_ms"`
}

// Broker is the broker probe: up when the name server and the brokers
// answered the route and offset requests.
type Broker struct {
	NameSrv string  `json:"namesrv"`
	Up      bool    `json:"up"`
	Error   string  `json:"error,omitempty"`
	TookMS  float64 `json:"took_ms"`
	// Stored counts the messages ever stored in the ORDER topic.
	Stored Counter `json:"order_stored"`
}

// Counter is a counter's value and its rate over the window.
type Counter struct {
	Total *float64 `json:"total"`
	PerS  *float64 `json:"per_s"`
}

// Reason is one rejection reason at the front door.
type Reason struct {
	Reason string `json:"reason"`
	Counter
}

// Front is the order intake.
type Front struct {
	Up       bool     `json:"up"`
	Accepted Counter  `json:"accepted"`
	Replayed Counter  `json:"replayed"`
	Rejected []Reason `json:"rejected"`
	// RejectedPerS sums the reasons' rates.
	RejectedPerS *float64 `json:"rejected_per_s"`
	// P99MS is the p99 of POST /api/v1/orders over the window, nil when no
	// request was served in it. With P99Over the p99 is above the largest
	// histogram bucket and P99MS is that bucket's bound.
	P99MS          *float64 `json:"p99_ms"`
	P99Over        bool     `json:"p99_over,omitempty"`
	WindowRequests *float64 `json:"window_requests"`
}

// Group is one consumer group.
type Group struct {
	Group    string   `json:"group"`
	Service  string   `json:"service"`
	Up       bool     `json:"up"` // its service's metrics answered
	Consumed Counter  `json:"consumed"`
	Lag      *float64 `json:"lag"`     // nil for broadcasting groups (no lag exported)
	Retries  *float64 `json:"retries"` // deliveries that asked for a redelivery
	DLQ      *float64 `json:"dlq"`     // poison messages the consumer sent to the DLQ
	// BrokerDLQ counts the messages ever stored in the group's DLQ topic,
	// whoever sent them there.
	BrokerDLQ *float64 `json:"broker_dlq"`
}

// Product is one sale: the stock numbers of inventory-service and the
// orders of order-service (nil when order-service did not answer).
type Product struct {
	ProductID     string    `json:"product_id"`
	Name          string    `json:"name"`
	Stock         int64     `json:"stock"`
	Available     int64     `json:"available"`
	Sold          int64     `json:"sold"`
	SaleStartedAt time.Time `json:"sale_started_at"`
	Pending       *int64    `json:"pending"` // orders waiting for payment
	Paid          *int64    `json:"paid"`    // paid, shipped included
	Shipped       *int64    `json:"shipped"`
	Closed        *int64    `json:"closed"`
	Other         *int64    `json:"other"` // any status the columns do not know
}

// Outbox is order-service's outbox of created events not yet sent.
type Outbox struct {
	Length     *float64 `json:"length"`
	OldestAgeS *float64 `json:"oldest_age_s"`
}

// Outcome is one label value of a counter of the outcome panel.
type Outcome struct {
	Metric string `json:"metric"`
	Value  string `json:"value"`
	Counter
}

// Build makes the Board of cur; prev (nil on the first read) is the read
// before it, which the rates are computed against.
func Build(prev, cur *Scrape, consumeRate float64) Board {
	b := Board{At: cur.At, ConsumeRate: consumeRate, Products: []Product{}, Groups: []Group{}, Outcomes: []Outcome{}}
	var dt float64
	if prev != nil {
		dt = cur.At.Sub(prev.At).Seconds()
	}
	b.WindowS = dt
	prevFams := map[string]scrape.Families{}
	if prev != nil {
		for _, s := range prev.Services {
			prevFams[s.Name] = s.Families
		}
	}
	curFams := map[string]scrape.Families{}
	for _, s := range cur.Services {
		v := Service{Name: s.Name, URL: s.URL, Up: s.Err == nil, TookMS: ms(s.Took)}
		if s.Err != nil {
			v.Error = s.Err.Error()
		} else {
			curFams[s.Name] = s.Families
		}
		b.Services = append(b.Services, v)
	}
	order, prevOrder := curFams["order"], prevFams["order"]
	b.Front = front(order, prevOrder, dt)
	b.Outbox = Outbox{Length: gauge(order, metricOutboxLength), OldestAgeS: gauge(order, metricOutboxAge)}
	b.Groups = groups(cur, curFams, prevFams, dt)
	b.Broker = broker(prev, cur, dt)
	b.Products, b.ProductsError, b.CountsError = products(cur)
	for _, s := range cur.Services {
		for _, oc := range outcomeCounters {
			cv, pv := byLabel(curFams[s.Name], oc.Metric, oc.Label), byLabel(prevFams[s.Name], oc.Metric, oc.Label)
			for _, v := range sortedKeys(cv) {
				b.Outcomes = append(b.Outcomes, Outcome{Metric: oc.Metric, Value: v, Counter: counter(cv[v], pv, v, dt)})
			}
		}
	}
	return b
}

func front(cur, prev scrape.Families, dt float64) Front {
	f := Front{Up: cur != nil, Rejected: []Reason{}}
	if cur == nil {
		for _, r := range reasonOrder {
			f.Rejected = append(f.Rejected, Reason{Reason: r})
		}
		return f
	}
	byResult := func(fams scrape.Families) map[string]float64 {
		if fams == nil {
			return nil
		}
		out := map[string]float64{}
		for result, v := range byLabel(fams, metricRequests, labelResult) {
			switch result {
			case resultAccepted, resultReplayed:
				out[result] += v
			default:
				out[reason(result)] += v
			}
		}
		return out
	}
	cv, pv := byResult(cur), byResult(prev)
	f.Accepted = counter(cv[resultAccepted], pv, resultAccepted, dt)
	f.Replayed = counter(cv[resultReplayed], pv, resultReplayed, dt)
	reasons := slices.Clone(reasonOrder)
	for k := range cv {
		if k != resultAccepted && k != resultReplayed && !slices.Contains(reasons, k) {
			reasons = append(reasons, k)
		}
	}
	slices.Sort(reasons[len(reasonOrder):])
	for _, r := range reasons {
		c := counter(cv[r], pv, r, dt)
		f.Rejected = append(f.Rejected, Reason{Reason: r, Counter: c})
		if c.PerS != nil {
			f.RejectedPerS = ptr(deref(f.RejectedPerS) + *c.PerS)
		}
	}
	if h := histogram(cur, metricHTTPDuration, labelRoute, intakeRoute); h != nil && prev != nil {
		cb, ct := buckets(h)
		bs, total := cb, ct
		if ph := histogram(prev, metricHTTPDuration, labelRoute, intakeRoute); ph != nil {
			pb, pt := buckets(ph)
			bs, total = windowBuckets(cb, pb, ct, pt)
		}
		f.WindowRequests = ptr(total)
		if v, over, ok := quantile(0.99, bs, total); ok {
			f.P99MS, f.P99Over = ptr(v*1000), over
		}
	}
	return f
}

// reason is the front-door reason of an order_requests_total result.
func reason(result string) string {
	if r, ok := rejectReasons[result]; ok {
		return r
	}
	return result
}

// groups lists every known group: its service's numbers, or a row marked
// down when the service did not answer.
func groups(cur *Scrape, curFams, prevFams map[string]scrape.Families, dt float64) []Group {
	type stats struct{ total, retries, dlq float64 }
	read := func(svc string, fams scrape.Families) map[string]*stats {
		out := map[string]*stats{}
		mf := fams[svc+suffixConsumed]
		for _, m := range mf.GetMetric() {
			g := label(m, labelGroup)
			s := out[g]
			if s == nil {
				s = &stats{}
				out[g] = s
			}
			v := value(mf, m)
			s.total += v
			switch label(m, labelResult) {
			case resultRetry:
				s.retries += v
			case resultDLQ:
				s.dlq += v
			}
		}
		return out
	}
	rank := map[string]int{}
	for i, s := range cur.Services {
		rank[s.Name] = i
	}
	out := []Group{}
	for group, svc := range cur.Groups {
		g := Group{Group: group, Service: svc}
		if fams, ok := curFams[svc]; ok {
			g.Up = true
			// A group that has consumed nothing yet has no samples: 0.
			s := cmp.Or(read(svc, fams)[group], &stats{})
			g.Consumed.Total, g.Retries, g.DLQ = ptr(s.total), ptr(s.retries), ptr(s.dlq)
			if pf, ok := prevFams[svc]; ok && dt > 0 {
				ps := cmp.Or(read(svc, pf)[group], &stats{})
				g.Consumed.PerS = ptr(rate(s.total, ps.total, dt))
			}
			mf := fams[svc+suffixLag]
			for _, m := range mf.GetMetric() {
				if label(m, labelGroup) == group {
					g.Lag = ptr(deref(g.Lag) + value(mf, m))
				}
			}
		}
		if cur.BrokerErr == nil && cur.Broker.Offsets != nil {
			g.BrokerDLQ = ptr(float64(cur.Broker.Offsets[dlqPrefix+group]))
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(rank[a.Service], rank[b.Service]), strings.Compare(a.Group, b.Group))
	})
	return out
}

// DiscoverGroups adds to known (group → service) every group of the
// services' consumed and lag metrics.
func DiscoverGroups(known map[string]string, services []ServiceScrape) {
	for _, s := range services {
		for _, suffix := range []string{suffixConsumed, suffixLag} {
			for _, m := range s.Families[s.Name+suffix].GetMetric() {
				if g := label(m, labelGroup); g != "" {
					known[g] = s.Name
				}
			}
		}
	}
}

// BrokerTopics are the topics the broker probe reads for the known groups.
func BrokerTopics(groups map[string]string) []string {
	topics := []string{topicOrder}
	for _, g := range sortedKeys(groups) {
		topics = append(topics, dlqPrefix+g)
	}
	return topics
}

func broker(prev, cur *Scrape, dt float64) Broker {
	b := Broker{NameSrv: cur.NameSrv, Up: cur.BrokerErr == nil, TookMS: ms(cur.Broker.Took)}
	if cur.BrokerErr != nil {
		b.Error = cur.BrokerErr.Error()
		return b
	}
	stored, ok := cur.Broker.Offsets[topicOrder]
	if !ok {
		return b
	}
	b.Stored.Total = ptr(float64(stored))
	if prev != nil && prev.BrokerErr == nil && dt > 0 {
		if p, ok := prev.Broker.Offsets[topicOrder]; ok {
			b.Stored.PerS = ptr(rate(float64(stored), float64(p), dt))
		}
	}
	return b
}

func products(cur *Scrape) ([]Product, string, string) {
	var perr, cerr string
	if cur.ProductsErr != nil {
		perr = cur.ProductsErr.Error()
	}
	if cur.CountsErr != nil {
		cerr = cur.CountsErr.Error()
	}
	out := make([]Product, 0, len(cur.Products))
	known := slices.Concat(statusPending, statusPaid, statusShipped, statusClosed)
	for _, p := range cur.Products {
		v := Product{ProductID: p.ProductID, Name: p.Name, Stock: p.Stock, Available: p.Available, Sold: p.Sold,
			SaleStartedAt: p.SaleStartedAt}
		if cur.CountsErr == nil && cur.Counts != nil {
			counts := cur.Counts[p.ProductID]
			sum := func(statuses []string) *int64 {
				var n int64
				for _, s := range statuses {
					n += counts[s]
				}
				return &n
			}
			v.Pending, v.Paid, v.Shipped, v.Closed = sum(statusPending), sum(statusPaid), sum(statusShipped), sum(statusClosed)
			var other int64
			for s, n := range counts {
				if !slices.Contains(known, s) {
					other += n
				}
			}
			v.Other = &other
		}
		out = append(out, v)
	}
	return out, perr, cerr
}

// counter is a Counter of value cur whose value in the previous read is
// prev[key] (no rate when prev is nil: that read failed or there was none).
func counter(cur float64, prev map[string]float64, key string, dt float64) Counter {
	c := Counter{Total: ptr(cur)}
	if prev != nil && dt > 0 {
		c.PerS = ptr(rate(cur, prev[key], dt))
	}
	return c
}

// rate is (cur − prev) / dt; a counter that went down was reset (its
// process restarted), so all of cur is new.
func rate(cur, prev, dt float64) float64 {
	d := cur - prev
	if d < 0 {
		d = cur
	}
	return d / dt
}

// byLabel sums the samples of the counter or gauge name by the value of
// label; nil when the family is absent.
func byLabel(fams scrape.Families, name, lbl string) map[string]float64 {
	mf, ok := fams[name]
	if !ok {
		return nil
	}
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		out[label(m, lbl)] += value(mf, m)
	}
	return out
}

// gauge sums the samples of name; nil when the family is absent.
func gauge(fams scrape.Families, name string) *float64 {
	mf, ok := fams[name]
	if !ok {
		return nil
	}
	var sum float64
	for _, m := range mf.GetMetric() {
		sum += value(mf, m)
	}
	return &sum
}

// histogram returns the histogram of name whose label lbl is v, or nil.
func histogram(fams scrape.Families, name, lbl, v string) *dto.Histogram {
	for _, m := range fams[name].GetMetric() {
		if label(m, lbl) == v && m.GetHistogram() != nil {
			return m.GetHistogram()
		}
	}
	return nil
}

// value is a counter's, gauge's or untyped sample's value.
func value(mf *dto.MetricFamily, m *dto.Metric) float64 {
	switch mf.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	default:
		return m.GetUntyped().GetValue()
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func ptr[T any](v T) *T { return &v }

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
