package board

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"seckill/console/internal/scrape"
)

// parse parses Prometheus text into families.
func parse(t *testing.T, text string) scrape.Families {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	return fams
}

const orderBefore = `
# TYPE order_requests_total counter
order_requests_total{result="accepted"} 100
order_requests_total{result="sold_out"} 10
order_requests_total{result="limit_exceeded"} 4
# TYPE order_http_request_duration_seconds histogram
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="0.001"} 50
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="0.01"} 100
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="0.1"} 114
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="+Inf"} 114
order_http_request_duration_seconds_sum{route="/api/v1/orders"} 1
order_http_request_duration_seconds_count{route="/api/v1/orders"} 114
order_http_request_duration_seconds_bucket{route="/healthz",le="0.001"} 9
order_http_request_duration_seconds_bucket{route="/healthz",le="0.01"} 9
order_http_request_duration_seconds_bucket{route="/healthz",le="0.1"} 9
order_http_request_duration_seconds_bucket{route="/healthz",le="+Inf"} 9
order_http_request_duration_seconds_sum{route="/healthz"} 0
order_http_request_duration_seconds_count{route="/healthz"} 9
# TYPE order_messages_consumed_total counter
order_messages_consumed_total{group="GID-order",topic="ORDER",result="ok"} 40
# TYPE order_consumer_lag gauge
order_consumer_lag{group="GID-order"} 60
order_consumer_lag{group="GID-order-timeout"} 0
`

// Two seconds later: 200 more accepted, 20 sold out, 3 of a result the
// console does not know; 220 intake requests, of which 198 within 1 ms,
// 220 within 10 ms (the 14 between 10 and 100 ms all came before).
const orderAfter = `
# TYPE order_requests_total counter
order_requests_total{result="accepted"} 300
order_requests_total{result="sold_out"} 30
order_requests_total{result="limit_exceeded"} 4
order_requests_total{result="rebuilding"} 2
order_requests_total{result="teapot"} 3
# TYPE order_http_request_duration_seconds histogram
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="0.001"} 248
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="0.01"} 320
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="0.1"} 334
order_http_request_duration_seconds_bucket{route="/api/v1/orders",le="+Inf"} 334
order_http_request_duration_seconds_sum{route="/api/v1/orders"} 2
order_http_request_duration_seconds_count{route="/api/v1/orders"} 334
# TYPE order_messages_consumed_total counter
order_messages_consumed_total{group="GID-order",topic="ORDER",result="ok"} 150
order_messages_consumed_total{group="GID-order",topic="ORDER",result="retry"} 7
order_messages_consumed_total{group="GID-order",topic="ORDER",result="dlq"} 3
# TYPE order_consumer_lag gauge
order_consumer_lag{group="GID-order"} 900
order_consumer_lag{group="GID-order-timeout"} 0
# TYPE order_outbox_length gauge
order_outbox_length 12
# TYPE order_outbox_oldest_age_seconds gauge
order_outbox_oldest_age_seconds 0.5
# TYPE payment_decisions_total counter
payment_decisions_total{result="late"} 2
`

const inventoryMetrics = `
# TYPE inventory_messages_consumed_total counter
inventory_messages_consumed_total{group="GID-inventory",topic="ORDER",result="ok"} 5
`

func TestBuild(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	down := errors.New("connection refused")
	start := t0.Add(-time.Minute)
	prev := &Scrape{At: t0, NameSrv: "127.0.0.1:9876",
		Services: []ServiceScrape{
			{Source: Source{"order", "http://o"}, Families: parse(t, orderBefore)},
			{Source: Source{"inventory", "http://i"}, Families: parse(t, inventoryMetrics)},
		},
		Broker: scrape.Broker{Offsets: map[string]int64{"ORDER": 1000}},
	}
	cur := &Scrape{At: t0.Add(2 * time.Second), NameSrv: "127.0.0.1:9876",
		Services: []ServiceScrape{
			{Source: Source{"order", "http://o"}, Families: parse(t, orderAfter)},
			{Source: Source{"inventory", "http://i"}, Err: down},
		},
		Products: []scrape.Product{{ProductID: "p1", Name: "phone", Stock: 100, Available: 40, Sold: 60, SaleStartedAt: start}},
		Counts:   map[string]map[string]int64{"p1": {"created": 5, "paid": 20, "shipped": 10, "closed": 25, "refunded": 1}},
		Broker:   scrape.Broker{Offsets: map[string]int64{"ORDER": 1600, "%DLQ%GID-order": 3}, Took: 2 * time.Millisecond},
		Groups:   map[string]string{"GID-order": "order", "GID-order-timeout": "order", "GID-inventory": "inventory"},
	}
	b := Build(prev, cur, 200)

	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	wantFront := Front{
		Up:       true,
		Accepted: Counter{Total: f(300), PerS: f(100)},
		Replayed: Counter{Total: f(0), PerS: f(0)},
		Rejected: []Reason{
			{"sold out", Counter{f(30), f(10)}},
			{"limit", Counter{f(4), f(0)}},
			{"invalid", Counter{f(0), f(0)}},
			{"unavailable", Counter{f(2), f(1)}}, // rebuilding
			{"teapot", Counter{f(3), f(1.5)}},    // unknown results show under their own name
		},
		RejectedPerS: f(12.5),
		// 220 requests in the window: rank 217.8 falls in the 1–10 ms bucket
		// (198 below it, 22 in it): 1 + 9 × 19.8/22 = 9.1 ms.
		P99MS:          f(9.1),
		WindowRequests: f(220),
	}
	if diff := cmp.Diff(wantFront, b.Front, cmp.Comparer(approx)); diff != "" {
		t.Errorf("Build().Front (-want +got):\n%s", diff)
	}
	wantGroups := []Group{
		{Group: "GID-order", Service: "order", Up: true, Consumed: Counter{f(160), f(60)}, Lag: f(900), Retries: f(7), DLQ: f(3), BrokerDLQ: f(3)},
		{Group: "GID-order-timeout", Service: "order", Up: true, Consumed: Counter{f(0), f(0)}, Lag: f(0), Retries: f(0), DLQ: f(0), BrokerDLQ: f(0)},
		{Group: "GID-inventory", Service: "inventory", Up: false, BrokerDLQ: f(0)}, // its service is down: numbers unknown
	}
	if diff := cmp.Diff(wantGroups, b.Groups, cmp.Comparer(approx)); diff != "" {
		t.Errorf("Build().Groups (-want +got):\n%s", diff)
	}
	wantProducts := []Product{{ProductID: "p1", Name: "phone", Stock: 100, Available: 40, Sold: 60, SaleStartedAt: start,
		Pending: n(5), Paid: n(30), Shipped: n(10), Closed: n(25), Other: n(1)}}
	if diff := cmp.Diff(wantProducts, b.Products); diff != "" {
		t.Errorf("Build().Products (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Outbox{Length: f(12), OldestAgeS: f(0.5)}, b.Outbox, cmp.Comparer(approx)); diff != "" {
		t.Errorf("Build().Outbox (-want +got):\n%s", diff)
	}
	wantBroker := Broker{NameSrv: "127.0.0.1:9876", Up: true, TookMS: 2, Stored: Counter{f(1600), f(300)}}
	if diff := cmp.Diff(wantBroker, b.Broker, cmp.Comparer(approx)); diff != "" {
		t.Errorf("Build().Broker (-want +got):\n%s", diff)
	}
	wantServices := []Service{{Name: "order", URL: "http://o", Up: true}, {Name: "inventory", URL: "http://i", Error: "connection refused"}}
	if diff := cmp.Diff(wantServices, b.Services); diff != "" {
		t.Errorf("Build().Services (-want +got):\n%s", diff)
	}
	wantOutcomes := []Outcome{{Metric: "payment_decisions_total", Value: "late", Counter: Counter{f(2), nil}}}
	if diff := cmp.Diff(wantOutcomes, b.Outcomes, cmp.Comparer(approx)); diff != "" {
		t.Errorf("Build().Outcomes (-want +got):\n%s", diff)
	}
}

// TestBuildDown: with order-service down and the counts and the broker
// failing, the board still builds, says why, and shows no number it does
// not have.
func TestBuildDown(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	cur := &Scrape{At: t0,
		Services:  []ServiceScrape{{Source: Source{"order", "http://o"}, Err: errors.New("refused")}},
		Products:  []scrape.Product{{ProductID: "p1", Stock: 5, Available: 5}},
		CountsErr: errors.New("order-service: refused"),
		BrokerErr: errors.New("route of ORDER: refused"),
		Groups:    map[string]string{"GID-order": "order"},
	}
	b := Build(nil, cur, 200)
	if b.Front.Up || b.Front.Accepted.Total != nil || len(b.Front.Rejected) != len(reasonOrder) || b.Front.P99MS != nil {
		t.Errorf("Front = %+v, want down with no numbers and every reason listed", b.Front)
	}
	if b.Outbox.Length != nil || b.Outbox.OldestAgeS != nil {
		t.Errorf("Outbox = %+v, want n/a", b.Outbox)
	}
	if len(b.Groups) != 1 || b.Groups[0].Up || b.Groups[0].Consumed.Total != nil || b.Groups[0].BrokerDLQ != nil {
		t.Errorf("Groups = %+v, want GID-order down with no numbers", b.Groups)
	}
	if b.Broker.Up || b.Broker.Error != "route of ORDER: refused" {
		t.Errorf("Broker = %+v, want down with its error", b.Broker)
	}
	if b.CountsError != "order-service: refused" || len(b.Products) != 1 || b.Products[0].Pending != nil || b.Products[0].Stock != 5 {
		t.Errorf("Products = %+v (counts error %q), want p1's stock and no order counts", b.Products, b.CountsError)
	}
}

func TestRateAfterRestart(t *testing.T) {
	// A counter that went down was reset by a restart: all of it is new.
	if got := rate(30, 100, 2); got != 15 {
		t.Errorf("rate(30, 100, 2) = %v, want 15", got)
	}
	if got := rate(130, 100, 2); got != 15 {
		t.Errorf("rate(130, 100, 2) = %v, want 15", got)
	}
}

func TestDiscoverGroups(t *testing.T) {
	known := map[string]string{"GID-old": "payment"}
	DiscoverGroups(known, []ServiceScrape{
		{Source: Source{"order", ""}, Families: parse(t, orderBefore)},
		{Source: Source{"inventory", ""}, Families: parse(t, inventoryMetrics)},
		{Source: Source{"payment", ""}, Err: errors.New("down")},
	})
	want := map[string]string{"GID-old": "payment", "GID-order": "order", "GID-order-timeout": "order", "GID-inventory": "inventory"}
	if diff := cmp.Diff(want, known); diff != "" {
		t.Errorf("DiscoverGroups (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ORDER", "%DLQ%GID-inventory", "%DLQ%GID-old", "%DLQ%GID-order", "%DLQ%GID-order-timeout"}, BrokerTopics(known)); diff != "" {
		t.Errorf("BrokerTopics (-want +got):\n%s", diff)
	}
}

func approx(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
