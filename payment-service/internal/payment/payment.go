// Package payment owns the payment of each order and is the one arbiter of
// its pay window: paid or expired is decided here, by one conditional
// transition of the payment row under its lock, against the deadline fixed
// when the order was accepted, on this database's clock. A pay before the
// deadline wins (pending -> paid) and its paid event is written in the same
// transaction (pkg/outbox); a pay after it, the pay timeout, or the sweeper
// expire the order (pending -> expired) and write its closed event. Orders are
// payable the moment they are accepted: a payment row missing yet is made from
// the reservation the intake wrote in Redis (or from the order carried by a
// created or timeout event).
package payment

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status of a payment.
type Status string

// Payment statuses: pending -> paid | expired | cancelled; paid -> refunded.
// cancelled and refunded follow inventory's refusal of the order (the one
// legitimate refund); a payment answered paid is otherwise never undone.
const (
	StatusPending   Status = "pending"
	StatusPaid      Status = "paid"
	StatusExpired   Status = "expired"
	StatusCancelled Status = "cancelled"
	StatusRefunded  Status = "refunded"
)

// Errors returned by Service.
var (
	// ErrNotFound: the order was never accepted (no reservation in Redis and
	// no payment row).
	ErrNotFound = errors.New("payment not found")
	// ErrClosed: the order is closed: its pay deadline passed (a pay after
	// it is refused synchronously) or inventory refused it.
	ErrClosed = errors.New("order closed")
	// errNotDue: a pay timeout arrived before the deadline (the delay level is
	// coarser than the window); the message is redelivered later.
	errNotDue = errors.New("pay deadline not reached")
)

// Payment is one row of the payments table.
type Payment struct {
	OrderID     string `gorm:"primaryKey"`
	AmountCents int64
	UserID      string
	ProductID   string
	Quantity    int
	AcceptedAt  *time.Time
	PayDeadline *time.Time
	PaidAt      *time.Time
	Status      Status
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName is the table in migrations.
func (Payment) TableName() string { return "payments" }

// Deadline is the pay deadline (zero when unknown).
func (p Payment) Deadline() time.Time {
	if p.PayDeadline == nil {
		return time.Time{}
	}
	return p.PayDeadline.UTC()
}

// Results counted by payment_payments_total (every state change) and
// payment_decisions_total (the arbiter's decisions on the pay window).
const (
	resultCreated   = "created"   // row recorded, pending
	resultPaid      = "paid"      // pending -> paid before the deadline
	resultLate      = "late"      // a pay after the deadline: pending -> expired, refused
	resultExpired   = "expired"   // pending -> expired by the pay timeout or the sweeper
	resultRejected  = "rejected"  // pay refused: the order is closed
	resultCancelled = "cancelled" // pending -> cancelled: inventory refused the order
	resultRefunded  = "refunded"  // paid -> refunded: inventory refused the order
)

// Metrics counts payment state changes.
type Metrics struct {
	payments  *prometheus.CounterVec
	decisions *prometheus.CounterVec
	payable   prometheus.Histogram
}

// NewMetrics registers payment_payments_total{result},
// payment_decisions_total{result} and payment_time_to_payable_seconds on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		payments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_payments_total",
			Help: "Payment state changes by result (created, paid, late, expired, rejected, cancelled, refunded).",
		}, []string{"result"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payment_decisions_total",
			Help: "Pay-window decisions: paid (before the deadline), late (a pay after it, refused), expired (by the pay timeout or the sweeper).",
		}, []string{"result"}),
		payable: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "payment_time_to_payable_seconds",
			Help:    "For each paid order, how long after its acceptance payment-service could take the payment: 0 when the intake's reservation served it, else when a created or timeout event brought the order.",
			Buckets: []float64{0, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300},
		}),
	}
	for _, r := range []string{resultCreated, resultPaid, resultLate, resultExpired, resultRejected, resultCancelled, resultRefunded} {
		m.payments.WithLabelValues(r) // export zeros so rates work from the start
	}
	for _, r := range []string{resultPaid, resultLate, resultExpired} {
		m.decisions.WithLabelValues(r)
	}
	reg.MustRegister(m.payments, m.decisions, m.payable)
	return m
}

func (m *Metrics) count(result string) {
	m.payments.WithLabelValues(result).Inc()
	switch result {
	case resultPaid, resultLate, resultExpired:
		m.decisions.WithLabelValues(result).Inc()
	}
}
