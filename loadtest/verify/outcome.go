package verify

import (
	"maps"
	"math"
	"slices"
)

// Outcome is what became of the sale's orders, counted on the snapshot the
// checks read, so the numbers and the verdict describe the same state.
type Outcome struct {
	Payments     map[string]int `json:"payments_by_status"`
	CloseReasons map[string]int `json:"closed_by_reason"`

	// Of the pays answered 200 (Options.Paid): kept means the order ended
	// paid or shipped with its payment paid; refused means inventory
	// refused the order and the payment was refunded; not kept is every
	// other end (closed otherwise, payment not paid, no order row). The
	// paid_kept check names each order not kept.
	PaidKept    int `json:"paid_kept"`
	PaidRefused int `json:"paid_refused_refunded"`
	PaidNotKept int `json:"paid_not_kept"`

	// Refunds is every refunded payment; RefundsNotRefused those of orders
	// inventory did not refuse (must be 0: refund_only_when_refused).
	Refunds           int `json:"refunds"`
	RefundsNotRefused int `json:"refunds_not_refused"`

	// StockBack is, for each unpaid order (payment expired) whose units
	// were deducted, how long after its pay_deadline inventory recorded the
	// release that put them on sale again (stock_movements.created_at −
	// payments.pay_deadline). StockBackMissing counts those without an
	// applied release. StockBackByDeadline is the same by the second of the
	// deadline, counted from the sale's start.
	StockBack           Delays        `json:"stock_back"`
	StockBackMissing    int           `json:"stock_back_missing"`
	StockBackByDeadline []DelaySecond `json:"stock_back_by_deadline"`
}

// Delays summarises durations, in seconds (nearest-rank percentiles).
type Delays struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50_s"`
	P90 float64 `json:"p90_s"`
	P99 float64 `json:"p99_s"`
	Max float64 `json:"max_s"`
}

// DelaySecond is the Delays of the deadlines within one second.
type DelaySecond struct {
	T float64 `json:"t"` // start of the second, seconds since the sale's start
	Delays
}

// NewDelays summarises d (seconds); it sorts d.
func NewDelays(d []float64) Delays {
	if len(d) == 0 {
		return Delays{}
	}
	slices.Sort(d)
	rank := func(q float64) float64 {
		return d[max(0, int(math.Ceil(q*float64(len(d))))-1)]
	}
	return Delays{N: len(d), P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Max: d[len(d)-1]}
}

func outcome(s *sale) *Outcome {
	out := &Outcome{Payments: map[string]int{}, CloseReasons: map[string]int{}}
	for _, o := range s.list {
		if o.status == statusClosed {
			out.CloseReasons[o.closeReason]++
		}
		if p, ok := s.payment(o.id); ok {
			out.Payments[p.status]++
			if p.status == payRefunded {
				out.Refunds++
				if !o.refused() || s.deductedInInventory(o.id) {
					out.RefundsNotRefused++
				}
			}
		}
	}
	for id := range s.paid {
		o := s.orders[id]
		p, ok := s.payment(id)
		switch {
		case o == nil || !ok:
			out.PaidNotKept++
		case (o.status == statusPaid || o.status == statusShipped) && p.status == payPaid:
			out.PaidKept++
		case o.refused() && p.status == payRefunded:
			out.PaidRefused++
		default:
			out.PaidNotKept++
		}
	}

	var all []float64
	bySecond := map[int64][]float64{}
	for _, o := range s.list {
		p, ok := s.payment(o.id)
		if !ok || p.status != payExpired || p.payDeadline.IsZero() || !s.deductedInInventory(o.id) {
			continue
		}
		_, rel, _ := s.movementsOf(o.id)
		if len(rel) != 1 || !rel[0].applied {
			out.StockBackMissing++
			continue
		}
		d := rel[0].created.Sub(p.payDeadline).Seconds()
		all = append(all, d)
		sec := int64(math.Floor(p.payDeadline.Sub(s.product.startedAt).Seconds()))
		bySecond[sec] = append(bySecond[sec], d)
	}
	out.StockBack = NewDelays(all)
	for _, sec := range slices.Sorted(maps.Keys(bySecond)) {
		out.StockBackByDeadline = append(out.StockBackByDeadline, DelaySecond{T: float64(sec), Delays: NewDelays(bySecond[sec])})
	}
	return out
}
