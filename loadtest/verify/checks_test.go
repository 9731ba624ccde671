package verify

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The orders of settledSale: a sale of 4 units after the drain.
const (
	oShipped   = "o-shipped"   // paid in time (answered 200), deducted, shipped
	oExpired   = "o-expired"   // never paid: expired, closed pay_timeout, units back
	oRefunded  = "o-refunded"  // paid (answered 200), inventory refused it: refunded
	oCancelled = "o-cancelled" // inventory refused it before any pay: cancelled
)

var saleStart = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// settledSale is a consistent snapshot: every check holds on it.
func settledSale() *sale {
	s := &sale{
		opts:       Options{ProductID: "p"},
		product:    product{stock: 4, sold: 1, limit: 1, saleID: 1, startedAt: saleStart},
		orders:     map[string]*order{},
		moves:      map[string][]movement{},
		payments:   map[string][]payment{},
		shipments:  map[string]int{oShipped: 1},
		redisStock: 3,
		accepted:   map[string]bool{},
		missing:    map[string]string{},
		paid:       map[string]bool{oShipped: true, oRefunded: true},
	}
	add := func(i int, id, status, reason string, deducted bool, pay payment, mvs ...movement) {
		created := saleStart.Add(time.Duration(i) * time.Second)
		deadline := created.Add(10 * time.Second)
		o := &order{id: id, user: "u" + id, status: status, closeReason: reason, qty: 1, amount: 999,
			deducted: deducted, payDeadline: deadline, created: created, updated: deadline.Add(time.Second)}
		s.orders[id], s.list, s.accepted[id] = o, append(s.list, o), true
		pay.payDeadline = deadline
		if pay.status == payPaid || pay.status == payRefunded {
			pay.paidAt = created.Add(time.Second)
		}
		if pay.updated.IsZero() {
			pay.updated = created.Add(time.Second)
		}
		s.payments[id] = []payment{pay}
		for _, m := range mvs {
			m.orderID, m.qty, m.saleID = id, 1, 1
			if m.created.IsZero() {
				m.created = created
			}
			s.moves[id] = append(s.moves[id], m)
			if m.applied {
				delta := -1
				if m.kind == "release" {
					delta = 1
				}
				s.ledger = append(s.ledger, ledgerLine{orderID: id, kind: m.kind, delta: delta})
			}
		}
	}
	deduct := movement{kind: "deduct", applied: true}
	refused := movement{kind: "deduct", note: "refused"}
	add(0, oShipped, statusShipped, "", true, payment{status: payPaid}, deduct)
	add(1, oExpired, statusClosed, "pay_timeout", true,
		payment{status: payExpired, updated: saleStart.Add(11*time.Second + 300*time.Millisecond)},
		deduct, movement{kind: "release", applied: true, redisApplied: true, created: saleStart.Add(13 * time.Second)})
	add(2, oRefunded, statusClosed, "out_of_stock", false, payment{status: payRefunded},
		refused, movement{kind: "release", note: "not_deducted"})
	add(3, oCancelled, statusClosed, "out_of_stock", false, payment{status: payCancelled}, refused)
	return s
}

func violations(s *sale) []Violation {
	res := &Result{}
	for _, c := range checks {
		c.run(s, func(orderID, format string, args ...any) { res.add(c.name, orderID, format, args...) })
	}
	return res.Violations
}

// TestChecks tampers with one fact of a settled sale per case and requires
// the check that owns it to name the order (or, for sale-wide facts, none).
func TestChecks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		tamper  func(s *sale)
		check   string // "" = no violation at all
		orderID string
	}{
		{name: "settled sale passes", tamper: func(*sale) {}},
		{name: "unsettled orders pass with AllowUnsettled", tamper: func(s *sale) {
			s.opts.AllowUnsettled = true
			s.orders[oShipped].status, s.shipments[oShipped] = statusPaid, 0
			s.orders[oCancelled].status, s.payments[oCancelled][0].status = statusCreated, payPending
		}},
		{"sold over stock", func(s *sale) { s.product.sold = 5 }, CheckOversell, ""},
		{"redis stock off", func(s *sale) { s.redisStock = 2 }, CheckRedis, ""},
		{"order left in the outbox stream", func(s *sale) {
			s.outbox = append(s.outbox, outboxEntry{id: "1-0", orderID: oShipped})
		}, CheckRedis, oShipped},
		{"second order of one user", func(s *sale) {
			o := *s.orders[oShipped]
			o.id, o.created = "o-twice", o.created.Add(time.Second)
			s.orders[o.id], s.list, s.accepted[o.id] = &o, append(s.list, &o), true
		}, CheckUserLimit, "o-twice"},
		{"accepted order lost", func(s *sale) { s.missing["o-lost"] = "" }, CheckAccepted, "o-lost"},
		{"order no client got a 202 for", func(s *sale) { delete(s.accepted, oExpired) }, CheckUnknown, oExpired},
		{"deduction twice", func(s *sale) {
			s.moves[oShipped] = append(s.moves[oShipped], s.moves[oShipped][0])
		}, CheckDeduction, oShipped},
		{"deducted order without orders.deducted", func(s *sale) { s.orders[oExpired].deducted = false }, CheckDeduction, oExpired},
		{"refused order marked deducted", func(s *sale) { s.orders[oCancelled].deducted = true }, CheckDeduction, oCancelled},
		{"refused order left open", func(s *sale) {
			s.orders[oCancelled].status, s.orders[oCancelled].closeReason = statusCreated, ""
		}, CheckDeduction, oCancelled},
		{"payment missing", func(s *sale) { delete(s.payments, oExpired) }, CheckPayment, oExpired},
		{"payment in an unknown status", func(s *sale) { s.payments[oExpired][0].status = "lost" }, CheckPayment, oExpired},
		{"paid at the deadline", func(s *sale) {
			s.payments[oShipped][0].paidAt = s.payments[oShipped][0].payDeadline
		}, CheckPayWindow, oShipped},
		{"expired before the deadline", func(s *sale) {
			s.payments[oExpired][0].updated = s.payments[oExpired][0].payDeadline.Add(-time.Millisecond)
		}, CheckPayWindow, oExpired},
		{"two deadlines", func(s *sale) {
			s.orders[oShipped].payDeadline = s.orders[oShipped].payDeadline.Add(time.Second)
		}, CheckPayWindow, oShipped},
		{"pay timeout closed a cancelled payment", func(s *sale) { s.payments[oExpired][0].status = payCancelled }, CheckPayOrClose, oExpired},
		{"refused order's payment left paid", func(s *sale) { s.payments[oRefunded][0].status = payPaid }, CheckPayOrClose, oRefunded},
		{"shipped order's payment expired", func(s *sale) { s.payments[oShipped][0].status = payExpired }, CheckPayOrClose, oShipped},
		{"refund of an order inventory deducted", func(s *sale) {
			s.payments[oExpired][0].status = payRefunded
			s.payments[oExpired][0].paidAt = saleStart.Add(2 * time.Second)
		}, CheckRefund, oExpired},
		{"refund of an order closed by its deadline", func(s *sale) { s.orders[oRefunded].closeReason = "pay_timeout" }, CheckRefund, oRefunded},
		{"pay answered 200, order closed by its deadline", func(s *sale) { s.paid[oExpired] = true }, CheckPaidKept, oExpired},
		{"pay answered 200, refused, payment cancelled", func(s *sale) { s.payments[oRefunded][0].status = payCancelled }, CheckPaidKept, oRefunded},
		{"pay answered 200, payment still pending", func(s *sale) {
			s.orders[oShipped].status, s.shipments[oShipped] = statusCreated, 0
			s.payments[oShipped][0].status = payPending
		}, CheckPaidKept, oShipped},
		{"pay answered 200 for an order never persisted", func(s *sale) { s.paid["o-ghost"] = true }, CheckPaidKept, "o-ghost"},
		{"shipment missing", func(s *sale) { delete(s.shipments, oShipped) }, CheckShipment, oShipped},
		{"shipment for a closed order", func(s *sale) { s.shipments[oExpired] = 1 }, CheckShipment, oExpired},
		{"shipment of an order inventory did not deduct", func(s *sale) {
			s.moves[oShipped][0].applied, s.moves[oShipped][0].note = false, "refused"
		}, CheckShipped, oShipped},
		{"shipment of an order without orders.deducted", func(s *sale) { s.orders[oShipped].deducted = false }, CheckShipped, oShipped},
		{"shipment of a refunded order", func(s *sale) { s.shipments[oRefunded] = 1 }, CheckShipped, oRefunded},
		{"release given twice", func(s *sale) {
			s.moves[oExpired] = append(s.moves[oExpired], s.moves[oExpired][1])
		}, CheckRelease, oExpired},
		{"release not given back in redis", func(s *sale) { s.moves[oExpired][1].redisApplied = false }, CheckRelease, oExpired},
		{"refused order's units given back", func(s *sale) { s.moves[oRefunded][1].applied = true }, CheckRelease, oRefunded},
		{"ledger line doubled", func(s *sale) {
			s.ledger = append(s.ledger, ledgerLine{orderID: oExpired, kind: "release", delta: 1})
		}, CheckLedger, oExpired},
		{"paid order never shipped", func(s *sale) {
			s.orders[oShipped].status, s.shipments[oShipped] = statusPaid, 0
		}, CheckSettled, oShipped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := settledSale()
			tc.tamper(s)
			got := violations(s)
			if tc.check == "" {
				if len(got) != 0 {
					t.Fatalf("violations = %v, want none", got)
				}
				return
			}
			if !slices.ContainsFunc(got, func(v Violation) bool { return v.Check == tc.check && v.OrderID == tc.orderID }) {
				t.Fatalf("violations = %v, want a %s violation naming order %q", got, tc.check, tc.orderID)
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tamper func(s *sale)
		want   Outcome
	}{
		{"settled sale", func(*sale) {}, Outcome{
			Payments:     map[string]int{payPaid: 1, payExpired: 1, payRefunded: 1, payCancelled: 1},
			CloseReasons: map[string]int{"pay_timeout": 1, "out_of_stock": 2},
			PaidKept:     1, PaidRefused: 1, Refunds: 1,
			StockBack:           Delays{N: 1, P50: 2, P90: 2, P99: 2, Max: 2},
			StockBackByDeadline: []DelaySecond{{T: 11, Delays: Delays{N: 1, P50: 2, P90: 2, P99: 2, Max: 2}}},
		}},
		{"paid, closed by its deadline; a refund not refused; a release missing", func(s *sale) {
			s.paid[oExpired] = true
			s.orders[oRefunded].closeReason = "pay_timeout"
			s.moves[oExpired] = s.moves[oExpired][:1]
		}, Outcome{
			Payments:     map[string]int{payPaid: 1, payExpired: 1, payRefunded: 1, payCancelled: 1},
			CloseReasons: map[string]int{"pay_timeout": 2, "out_of_stock": 1},
			PaidKept:     1, PaidNotKept: 2, Refunds: 1, RefundsNotRefused: 1, StockBackMissing: 1,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := settledSale()
			tc.tamper(s)
			if d := cmp.Diff(&tc.want, outcome(s)); d != "" {
				t.Errorf("outcome (-want +got):\n%s", d)
			}
		})
	}
}

func TestNewDelays(t *testing.T) {
	t.Parallel()
	hundred := make([]float64, 100)
	for i := range hundred {
		hundred[i] = float64(100 - i) // 100 .. 1, unsorted
	}
	tests := []struct {
		name string
		in   []float64
		want Delays
	}{
		{"none", nil, Delays{}},
		{"one", []float64{1.5}, Delays{N: 1, P50: 1.5, P90: 1.5, P99: 1.5, Max: 1.5}},
		{"hundred", hundred, Delays{N: 100, P50: 50, P90: 90, P99: 99, Max: 100}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if d := cmp.Diff(tc.want, NewDelays(tc.in)); d != "" {
				t.Errorf("NewDelays (-want +got):\n%s", d)
			}
		})
	}
}
