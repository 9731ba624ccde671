package board

// The metric names, label values and order statuses the console reads, in
// one place: when a service renames or adds one, change it here. Consumer
// groups are never listed: they are discovered from the group label of the
// per-service pkg/mq metrics below.
const (
	// order-service intake.
	metricRequests     = "order_requests_total"                // {result}: accepted, replayed, or a rejection
	metricHTTPDuration = "order_http_request_duration_seconds" // histogram {route} (pkg/httpx)
	intakeRoute        = "/api/v1/orders"                      // the route label of POST /api/v1/orders
	metricOutboxLength = "order_outbox_length"                 // gauge; shown as n/a while absent
	metricOutboxAge    = "order_outbox_oldest_age_seconds"     // gauge; shown as n/a while absent

	// pkg/mq, exported by every service as <service><suffix>, <service>
	// being the name the console knows the service by (order, inventory,
	// payment, logistics).
	suffixConsumed = "_messages_consumed_total" // {group, topic, result}
	suffixLag      = "_consumer_lag"            // gauge {group}; clustering groups only

	// Label names.
	labelResult = "result"
	labelGroup  = "group"
	labelRoute  = "route"

	// order_requests_total results that are not rejections.
	resultAccepted = "accepted"
	resultReplayed = "replayed"

	// <svc>_messages_consumed_total results counted apart.
	resultRetry = "retry"
	resultDLQ   = "dlq"

	// The topic whose stored messages show the broker taking the intake.
	topicOrder = "ORDER"
	// dlqPrefix + group is the group's dead-letter topic in the broker.
	dlqPrefix = "%DLQ%"
)

// rejectReasons maps order_requests_total results to the front door's
// rejection reasons; a result not listed here (and not accepted or
// replayed) is shown under its own name.
var rejectReasons = map[string]string{
	"sold_out":        "sold out",
	"limit_exceeded":  "limit",
	"invalid":         "invalid",
	"unknown_product": "invalid",
	"unavailable":     "unavailable",
	"rebuilding":      "unavailable",
	"backpressure":    "unavailable",
}

// reasonOrder is the order the reasons are shown in; each is always shown.
var reasonOrder = []string{"sold out", "limit", "invalid", "unavailable"}

// outcomeCounters are counters shown per result label in the outcome panel
// (each only when the service exports it).
var outcomeCounters = []struct{ Metric, Label string }{
	{"payment_payments_total", labelResult},
	{"payment_decisions_total", labelResult},
	{"order_status_transitions_total", "status"},
}

// Order statuses (order-service's orders.status) per column of the
// products table. A status not listed is shown under "other".
var (
	statusPending = []string{"created"}
	statusPaid    = []string{"paid", "shipped"}
	statusShipped = []string{"shipped"}
	statusClosed  = []string{"closed"}
)
