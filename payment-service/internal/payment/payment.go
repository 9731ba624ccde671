// Package payment owns the payment of each order. The order's created event
// makes a pending payment, the pay API moves it to paid, and the order's closed
// event cancels it (still pending) or refunds it (paid after all). Every change
// is a conditional update on status, so a pay and a close racing on one payment
// end in exactly one outcome.
package payment

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Status of a payment.
type Status string

// Payment statuses. pending -> paid | cancelled; paid -> refunded.
const (
	StatusPending   Status = "pending"
	StatusPaid      Status = "paid"
	StatusCancelled Status = "cancelled"
	StatusRefunded  Status = "refunded"
)

// Errors returned by Service.
var (
	// ErrNotFound: no payment for the order (unknown order, or its created
	// event is not applied yet).
	ErrNotFound = errors.New("payment not found")
	// ErrClosed: the order was closed, the payment is cancelled or refunded.
	ErrClosed = errors.New("order closed")
)

// errNotCreated makes a closed event wait (retry) for its created event.
var errNotCreated = errors.New("payment not created yet")

// Payment is one row of the payments table.
type Payment struct {
	OrderID     string `gorm:"primaryKey"`
	AmountCents int64
	Status      Status
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// TableName is the table in migrations/001_payments.sql.
func (Payment) TableName() string { return "payments" }

// Results counted by payment_payments_total.
const (
	resultCreated   = "created"   // pending payment recorded
	resultPaid      = "paid"      // pending -> paid through the API
	resultRejected  = "rejected"  // pay refused: order closed
	resultCancelled = "cancelled" // pending -> cancelled by the order's close
	resultRefunded  = "refunded"  // paid -> refunded by the order's close
)

// Metrics counts payment state changes.
type Metrics struct {
	payments *prometheus.CounterVec
}

// NewMetrics registers payment_payments_total{result} on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{payments: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "payment_payments_total",
		Help: "Payment state changes by result (created, paid, rejected, cancelled, refunded).",
	}, []string{"result"})}
	for _, r := range []string{resultCreated, resultPaid, resultRejected, resultCancelled, resultRefunded} {
		m.payments.WithLabelValues(r) // export zeros so rates work from the start
	}
	reg.MustRegister(m.payments)
	return m
}

func (m *Metrics) count(result string) { m.payments.WithLabelValues(result).Inc() }
