package verify

import (
	"maps"
	"slices"
	"strings"
	"time"

	"seckill/pkg/events"
)

// Checks that a Violation can name.
const (
	CheckOversell   = "no_oversell"
	CheckRedis      = "redis_matches_db"
	CheckUserLimit  = "per_user_limit"
	CheckAccepted   = "accepted_order_persisted"
	CheckUnknown    = "no_order_without_202"
	CheckDeduction  = "one_deduction_per_order"
	CheckPayment    = "one_payment_per_order"
	CheckPayWindow  = "pay_window_kept"
	CheckPayOrClose = "paid_or_closed_not_both"
	CheckRefund     = "refund_only_when_refused"
	CheckPaidKept   = "paid_kept"
	CheckShipment   = "one_shipment_per_paid_order"
	CheckShipped    = "shipped_only_paid_and_deducted"
	CheckRelease    = "closed_order_stock_back_once"
	CheckLedger     = "ledger_matches_movements"
	CheckSettled    = "order_settled"
)

// report adds a violation of the running check; orderID may be "".
type report func(orderID, format string, args ...any)

// checks are the invariants, each a small function of the snapshot, in the
// order their violations are listed.
var checks = []struct {
	name string
	run  func(*sale, report)
}{
	{CheckOversell, noOversell},
	{CheckRedis, redisMatchesDB},
	{CheckUserLimit, perUserLimit},
	{CheckAccepted, acceptedPersisted},
	{CheckUnknown, noOrderWithout202},
	{CheckDeduction, oneDeduction},
	{CheckPayment, onePayment},
	{CheckPayWindow, payWindowKept},
	{CheckPayOrClose, paidOrClosed},
	{CheckRefund, refundOnlyWhenRefused},
	{CheckPaidKept, paidKept},
	{CheckShipment, oneShipment},
	{CheckShipped, shippedPaidAndDeducted},
	{CheckRelease, stockBackOnce},
	{CheckLedger, ledgerMatchesMovements},
	{CheckSettled, settled},
}

// refusalNotes are the notes of a deduction inventory recorded without
// taking the units (the order is then closed out_of_stock).
var refusalNotes = map[string]bool{"refused": true, "stale_sale": true, "unknown_product": true}

// noOversell: sold ≤ stock; the units of orders not closed fit the stock and
// are what inventory sold.
func noOversell(s *sale, r report) {
	p := s.product
	if p.sold > p.stock {
		r("", "products.sold %d > stock %d", p.sold, p.stock)
	}
	kept := 0
	for _, o := range s.list {
		if o.status != statusClosed {
			kept += o.qty
		}
	}
	if kept > p.stock {
		r("", "%d units in orders not closed > stock %d", kept, p.stock)
	}
	if !s.opts.AllowUnsettled && kept != p.sold {
		r("", "products.sold %d, but orders not closed hold %d units", p.sold, kept)
	}
}

// redisMatchesDB: Redis stock = stock − sold, and no order of the sale is
// left in the intake's outbox stream.
func redisMatchesDB(s *sale, r report) {
	p := s.product
	if want := int64(p.stock - p.sold); s.redisStock != want {
		r("", "redis %s = %d, DB available (stock %d - sold %d) = %d",
			events.StockKey(s.opts.ProductID), s.redisStock, p.stock, p.sold, want)
	}
	for _, e := range s.outbox {
		r(e.orderID, "still in the outbox stream %s (entry %s), not handed to the broker", events.OutboxStream, e.id)
	}
}

// perUserLimit: the units one user held at once never exceed the limit; a
// closed order stops counting when it was closed (its units went back).
func perUserLimit(s *sale, r report) {
	limit := s.product.limit
	if limit <= 0 {
		return
	}
	byUser := map[string][]*order{}
	var users []string
	for _, o := range s.list {
		if byUser[o.user] == nil {
			users = append(users, o.user)
		}
		byUser[o.user] = append(byUser[o.user], o)
	}
	for _, u := range users {
		uo := byUser[u]
		if len(uo) < 2 && uo[0].qty <= limit {
			continue
		}
		for i, o := range uo { // sorted by created
			held := o.qty
			for _, prev := range uo[:i] {
				if prev.status != statusClosed || prev.updated.After(o.created) {
					held += prev.qty
				}
			}
			if held > limit {
				r(o.id, "user %s held %d units with this order (limit %d)", o.user, held, limit)
			}
		}
	}
}

// acceptedPersisted: every order_id a client got a 202 for has its row in
// the order DB, in this product's sale.
func acceptedPersisted(s *sale, r report) {
	for _, id := range slices.Sorted(maps.Keys(s.missing)) {
		if pid := s.missing[id]; pid != "" {
			r(id, "answered 202 but its row belongs to product %s or an older sale", pid)
		} else {
			r(id, "answered 202 but has no row in the order DB")
		}
	}
}

// noOrderWithout202: no order row that no client got a 202 for, and no
// stock movement of the sale for an order not in the sale.
func noOrderWithout202(s *sale, r report) {
	if s.accepted != nil {
		for _, o := range s.list {
			if !s.accepted[o.id] {
				r(o.id, "in the order DB (user %s, %s) but no client got a 202 for it", o.user, o.status)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(s.moves)) {
		if s.orders[id] != nil {
			continue
		}
		for _, m := range s.moves[id] {
			r(id, "stock %s in sale %d for an order not in the order DB's sale", m.kind, m.saleID)
		}
	}
}

// oneDeduction: one deduction per order, of its quantity in this sale;
// applied, or refused with a refusal note and the order then closed; and
// orders.deducted says what inventory did.
func oneDeduction(s *sale, r report) {
	for _, o := range s.list {
		ded, _, other := s.movementsOf(o.id)
		for _, m := range other {
			r(o.id, "stock movement of unknown kind %q", m.kind)
		}
		if len(ded) != 1 {
			r(o.id, "%d stock deductions, want 1", len(ded))
			continue
		}
		d := ded[0]
		switch {
		case d.applied && (d.saleID != s.product.saleID || d.qty != o.qty):
			r(o.id, "deduction of %d in sale %d, order has %d in sale %d", d.qty, d.saleID, o.qty, s.product.saleID)
		case d.applied && o.refused():
			r(o.id, "closed out_of_stock, but inventory applied its deduction")
		case !d.applied && !refusalNotes[d.note]:
			r(o.id, "deduction not applied with note %q, want refused, stale_sale or unknown_product", d.note)
		case !d.applied && o.status != statusClosed && !s.opts.AllowUnsettled:
			r(o.id, "inventory refused it (note %q) but the order is %s, want closed", d.note, o.status)
		}
		switch {
		case o.deducted && !d.applied:
			r(o.id, "orders.deducted is set, but inventory did not apply the deduction (note %q)", d.note)
		case !o.deducted && d.applied && !s.opts.AllowUnsettled:
			r(o.id, "inventory applied the deduction, but orders.deducted is not set")
		}
	}
}

var payStatuses = map[string]bool{payPending: true, payPaid: true, payExpired: true, payCancelled: true, payRefunded: true}

// onePayment: one payment record per order, in a known status.
func onePayment(s *sale, r report) {
	for _, o := range s.list {
		ps := s.payments[o.id]
		if len(ps) != 1 {
			r(o.id, "%d payment records, want 1", len(ps))
		} else if !payStatuses[ps[0].status] {
			r(o.id, "payment status %q, want pending, paid, expired, cancelled or refunded", ps[0].status)
		}
	}
}

// payWindowKept: the order and its payment carry the one deadline fixed at
// acceptance; a payment was taken only before it and expired only at or
// after it.
func payWindowKept(s *sale, r report) {
	for _, o := range s.list {
		p, ok := s.payment(o.id)
		if !ok {
			continue
		}
		if o.payDeadline.IsZero() {
			r(o.id, "order has no pay_deadline")
		}
		if p.payDeadline.IsZero() {
			if !s.opts.AllowUnsettled {
				r(o.id, "payment (%s) has no pay_deadline", p.status)
			}
			continue
		}
		if !o.payDeadline.IsZero() && !o.payDeadline.Equal(p.payDeadline) {
			r(o.id, "order's pay_deadline %s, payment's %s, want the one fixed at acceptance", ts(o.payDeadline), ts(p.payDeadline))
		}
		switch p.status {
		case payPaid, payRefunded:
			if p.paidAt.IsZero() {
				r(o.id, "payment %s without paid_at", p.status)
			} else if !p.paidAt.Before(p.payDeadline) {
				r(o.id, "payment taken at %s, not before its pay_deadline %s", ts(p.paidAt), ts(p.payDeadline))
			}
		case payExpired:
			if p.updated.Before(p.payDeadline) {
				r(o.id, "payment expired at %s, before its pay_deadline %s", ts(p.updated), ts(p.payDeadline))
			}
		}
	}
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// paidOrClosed: a closed order's payment is expired (pay_timeout), or
// expired, cancelled or refunded (out_of_stock), never paid or pending; a
// paid or shipped order's payment is paid.
func paidOrClosed(s *sale, r report) {
	for _, o := range s.list {
		p, ok := s.payment(o.id)
		if !ok {
			continue
		}
		switch o.status {
		case statusClosed:
			switch {
			case o.closeReason != events.ReasonPayTimeout && o.closeReason != events.ReasonOutOfStock:
				r(o.id, "closed with close_reason %q, want pay_timeout or out_of_stock", o.closeReason)
			case o.closeReason == events.ReasonPayTimeout && p.status != payExpired:
				r(o.id, "closed by its pay deadline but its payment is %s, want expired", p.status)
			case p.status == payPaid && !s.opts.AllowUnsettled:
				r(o.id, "closed out_of_stock but its payment is paid (not refunded)")
			case p.status == payPending && !s.opts.AllowUnsettled:
				r(o.id, "closed out_of_stock but its payment is pending (not cancelled)")
			}
		case statusPaid, statusShipped:
			if p.status != payPaid {
				r(o.id, "order %s but its payment is %s", o.status, p.status)
			}
		}
	}
}

// refundOnlyWhenRefused: a payment is refunded (or cancelled) only for an
// order inventory refused: its deduction not applied, the order closed
// out_of_stock.
func refundOnlyWhenRefused(s *sale, r report) {
	for _, o := range s.list {
		p, ok := s.payment(o.id)
		if !ok || (p.status != payRefunded && p.status != payCancelled) {
			continue
		}
		if s.deductedInInventory(o.id) {
			r(o.id, "payment %s but inventory deducted the order", p.status)
		}
		if !o.refused() && (o.status != statusCreated || !s.opts.AllowUnsettled) {
			r(o.id, "payment %s but the order is %s (close_reason %q), want closed out_of_stock", p.status, o.status, o.closeReason)
		}
	}
}

// paidKept: an order whose pay a client saw answered 200 ends paid or
// shipped with its payment paid; the one exception is an order inventory
// refused, whose payment is then refunded.
func paidKept(s *sale, r report) {
	for _, id := range slices.Sorted(maps.Keys(s.paid)) {
		o := s.orders[id]
		if o == nil {
			r(id, "pay answered 200 but the order is not in the sale's orders")
			continue
		}
		p, ok := s.payment(id)
		switch {
		case !ok:
			r(id, "pay answered 200 but the order has %d payment records", len(s.payments[id]))
		case o.refused():
			if p.status != payRefunded && (p.status != payPaid || !s.opts.AllowUnsettled) {
				r(id, "pay answered 200 and inventory refused the order, but its payment is %s, want refunded", p.status)
			}
		case o.status == statusClosed:
			r(id, "pay answered 200 but the order ended closed (%s), payment %s", o.closeReason, p.status)
		case p.status != payPaid:
			r(id, "pay answered 200 but its payment is %s (order %s)", p.status, o.status)
		}
	}
}

// oneShipment: one shipment per order paid and deducted, none for an order
// created or closed.
func oneShipment(s *sale, r report) {
	for _, o := range s.list {
		n := s.shipments[o.id]
		switch o.status {
		case statusClosed, statusCreated:
			if n != 0 {
				r(o.id, "%s order has %d shipments, want none", o.status, n)
			}
		case statusPaid, statusShipped:
			switch {
			case n > 1:
				r(o.id, "%s order has %d shipments, want 1", o.status, n)
			case n == 0 && o.status == statusShipped:
				r(o.id, "shipped order has no shipment")
			case n == 0 && !s.opts.AllowUnsettled && s.deductedInInventory(o.id):
				r(o.id, "paid and deducted order has no shipment, want 1")
			}
		}
	}
}

// shippedPaidAndDeducted: an order is shipped only once paid and deducted:
// its payment paid, inventory's deduction applied and orders.deducted set.
func shippedPaidAndDeducted(s *sale, r report) {
	for _, o := range s.list {
		if s.shipments[o.id] == 0 && o.status != statusShipped {
			continue
		}
		if p, ok := s.payment(o.id); !ok {
			r(o.id, "shipped, but it has %d payment records", len(s.payments[o.id]))
		} else if p.status != payPaid {
			r(o.id, "shipped, but its payment is %s, want paid", p.status)
		}
		if d, _, _ := s.movementsOf(o.id); len(d) != 1 || !d[0].applied {
			r(o.id, "shipped, but inventory did not apply its deduction")
		}
		if !o.deducted {
			r(o.id, "shipped, but orders.deducted is not set")
		}
	}
}

// stockBackOnce: a closed order whose units were deducted has exactly one
// release, applied in the DB and in Redis, of its quantity; a refused order
// has no applied release; an order not closed has none.
func stockBackOnce(s *sale, r report) {
	for _, o := range s.list {
		_, rel, _ := s.movementsOf(o.id)
		switch {
		case o.status != statusClosed:
			if len(rel) != 0 {
				r(o.id, "%s order has %d stock releases, want none", o.status, len(rel))
			}
		case !s.deductedInInventory(o.id):
			if len(rel) > 1 {
				r(o.id, "refused order has %d stock releases, want at most 1", len(rel))
			}
			for _, m := range rel {
				if m.applied {
					r(o.id, "refused order's release gave back %d units that were never deducted", m.qty)
				}
			}
		case len(rel) != 1:
			r(o.id, "closed order has %d stock releases, want 1", len(rel))
		case !rel[0].applied:
			r(o.id, "closed order's release not applied (note %q)", rel[0].note)
		case !rel[0].redisApplied:
			r(o.id, "closed order's release not given back in Redis")
		case rel[0].qty != o.qty:
			r(o.id, "released %d, order has %d", rel[0].qty, o.qty)
		}
	}
}

// ledgerMatchesMovements: one ledger line per applied movement with its
// delta, none other; Σ applied movements = sold; Σ ledger deltas = −sold.
func ledgerMatchesMovements(s *sale, r report) {
	lines := map[string]int{}
	sum := 0
	for _, l := range s.ledger {
		lines[l.orderID+"/"+l.kind]++
		sum += l.delta
		want := -1
		if l.kind == events.MovementRelease {
			want = 1
		}
		if o := s.orders[l.orderID]; o != nil {
			want *= o.qty
		}
		if l.delta != want {
			r(l.orderID, "ledger %s delta %d, want %d", l.kind, l.delta, want)
		}
	}
	applied := 0
	covered := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(s.moves)) {
		for _, m := range s.moves[id] {
			if m.saleID != s.product.saleID {
				continue
			}
			k := m.orderID + "/" + m.kind
			n := lines[k]
			switch {
			case m.applied && n != 1:
				r(id, "applied %s has %d ledger lines, want 1", m.kind, n)
			case !m.applied && n != 0:
				r(id, "%s not applied but has %d ledger lines", m.kind, n)
			}
			covered[k] = true
			if m.applied {
				if m.kind == events.MovementDeduct {
					applied += m.qty
				} else {
					applied -= m.qty
				}
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(lines)) {
		if covered[k] {
			continue
		}
		id, kind, _ := strings.Cut(k, "/")
		r(id, "%d ledger lines for %s without a stock movement", lines[k], kind)
	}
	if applied != s.product.sold {
		r("", "applied deductions - releases = %d, products.sold = %d", applied, s.product.sold)
	}
	if sum != -s.product.sold {
		r("", "ledger sum of deltas %d, want -sold = %d", sum, -s.product.sold)
	}
}

// settled: after the drain every order is shipped or closed.
func settled(s *sale, r report) {
	for _, o := range s.list {
		switch o.status {
		case statusShipped, statusClosed:
		case statusCreated:
			if !s.opts.AllowUnsettled {
				r(o.id, "still created (neither shipped nor closed)")
			}
		case statusPaid:
			if !s.opts.AllowUnsettled {
				r(o.id, "still paid, not shipped")
			}
		default:
			r(o.id, "unknown status %q", o.status)
		}
	}
}
