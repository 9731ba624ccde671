package payment

import (
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// The decisions of the pay window. Each takes a payment locked by
// Store.update and the database's clock; the arbiter's rule is that
// pending -> paid happens only before the deadline and pending -> expired
// only at or after it, each once, with its event in the same transaction.

// payNow decides a pay request.
func payNow(p Payment, now time.Time) change {
	switch p.Status {
	case StatusPending:
		if now.Before(p.Deadline()) {
			return change{to: StatusPaid, result: resultPaid, out: []mq.Outgoing{paidMessage(p, now)}}
		}
		// A pay after the deadline decides the expiry itself: the answer is
		// the same as the timeout's would have been.
		return change{to: StatusExpired, result: resultLate, out: []mq.Outgoing{expiredMessage(p, now)}, err: ErrClosed}
	case StatusPaid:
		return change{} // paid before: the same answer again
	default:
		return change{result: resultRejected, err: ErrClosed}
	}
}

// expire decides a pay timeout (or the sweeper) for the payment.
func expire(p Payment, now time.Time) change {
	if p.Status != StatusPending {
		return change{} // decided before: paid, expired, cancelled or refunded
	}
	if now.Before(p.Deadline()) {
		return change{err: errNotDue}
	}
	return change{to: StatusExpired, result: resultExpired, out: []mq.Outgoing{expiredMessage(p, now)}}
}

// record decides a created event: the row is recorded (or completed) and
// keeps its status.
func record(Payment, time.Time) change { return change{} }

// refuse decides inventory's refusal of the order (closed, out_of_stock):
// an unpaid payment is cancelled, a taken one refunded.
func refuse(p Payment, _ time.Time) change {
	switch p.Status {
	case StatusPending:
		return change{to: StatusCancelled, result: resultCancelled}
	case StatusPaid:
		return change{to: StatusRefunded, result: resultRefunded}
	default:
		return change{} // expired, cancelled or refunded before
	}
}

func orderMessage(tag, orderID string, ev any) mq.Outgoing {
	return mq.Outgoing{Topic: events.TopicOrder, Tag: tag, Keys: []string{orderID}, ShardingKey: orderID, Body: events.Marshal(ev)}
}

func paidMessage(p Payment, now time.Time) mq.Outgoing {
	return orderMessage(events.TagPaid, p.OrderID, events.Paid(events.OrderPaid{
		OrderID: p.OrderID, AmountCents: p.AmountCents, PaidAt: now,
	}))
}

// expiredMessage is the closed event of an order whose pay window ended:
// order-service closes the order, inventory gives its units back.
func expiredMessage(p Payment, now time.Time) mq.Outgoing {
	return orderMessage(events.TagClosed, p.OrderID, events.Closed(events.OrderClosed{
		OrderID: p.OrderID, ProductID: p.ProductID, Quantity: p.Quantity, UserID: p.UserID,
		Reason: events.ReasonPayTimeout, ClosedAt: now,
	}))
}

// seed is the payment row of an accepted order, from its created event.
func seed(ev events.OrderCreated) Payment {
	accepted, deadline := ev.CreatedAt.UTC(), ev.PayDeadline.UTC()
	return Payment{
		OrderID: ev.OrderID, AmountCents: ev.AmountCents, UserID: ev.UserID, ProductID: ev.ProductID,
		Quantity: ev.Quantity, AcceptedAt: &accepted, PayDeadline: &deadline,
	}
}
