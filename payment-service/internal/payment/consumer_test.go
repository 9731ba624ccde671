package payment_test

import (
	"encoding/json"
	"testing"
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
)

// The handler behind a real consumer on the embedded broker, with every
// message stored twice (same message ID, as after a lost send ack) and some
// events re-sent by the producer (new message ID): each event has one effect.
func TestConsumeThroughBroker(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.broker.DuplicateDelivery(2)
	log := testLog(t)
	cfg := mq.Config{NameServers: []string{env.broker.NameSrvAddr()}}
	producer, err := mq.NewProducer(t.Context(), cfg, "PID-order-test", log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	sub := mq.Subscription{
		Group:  "GID-payment",
		Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: events.TagCreated + " || " + events.TagClosed}},
	}
	c, err := mq.Subscribe(t.Context(), cfg, sub, env.handler.Handle, log, env.mqm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	send := func(tag, orderID string, ev any) {
		t.Helper()
		body, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		_, err = producer.SendSync(t.Context(), mq.Outgoing{
			Topic: events.TopicOrder, Tag: tag, Keys: []string{orderID}, ShardingKey: orderID, Body: body,
		})
		if err != nil {
			t.Fatalf("send %s of %s: %v", tag, orderID, err)
		}
	}
	created := func(id string) events.OrderCreated {
		return events.OrderCreated{Version: events.Version, EventID: events.EventID(id, events.TagCreated),
			OrderID: id, UserID: "u", ProductID: "p", Quantity: 1, AmountCents: 250, CreatedAt: time.Now().UTC()}
	}
	const orders, resent, closed = 20, 5, 10
	for i := range orders {
		send(events.TagCreated, orderID(i), created(orderID(i)))
	}
	for i := range resent {
		send(events.TagCreated, orderID(i), created(orderID(i))) // producer re-send: new message ID
	}
	for i := range closed {
		id := orderID(i)
		send(events.TagClosed, id, events.OrderClosed{Version: events.Version, EventID: events.EventID(id, events.TagClosed),
			OrderID: id, ProductID: "p", Quantity: 1, Reason: "pay_timeout", ClosedAt: time.Now().UTC()})
	}

	deliveries := float64(2 * (orders + resent + closed))
	ok := map[string]string{"group": "GID-payment", "result": "ok"}
	testenv.Eventually(t, time.Minute, "every delivery handled", func() bool {
		return testenv.Counter(t, env.reg, "payment_messages_consumed_total", ok) >= deliveries
	})
	if got := testenv.Counter(t, env.reg, "payment_messages_consumed_total", ok); got != deliveries {
		t.Errorf("deliveries acked = %v, want %v", got, deliveries)
	}
	for i := range orders {
		want := payment.StatusPending
		if i < closed {
			want = payment.StatusCancelled
		}
		p, rows := paymentRow(t, env.db, orderID(i))
		if rows != 1 || p.Status != want || p.AmountCents != 250 {
			t.Errorf("payments of %s = %d rows, %+v; want 1 %s row of 250", orderID(i), rows, p, want)
		}
	}
	if got, want := testenv.Counter(t, env.reg, "payment_payments_total", map[string]string{"result": "created"}), float64(orders); got != want {
		t.Errorf("payment_payments_total{created} = %v, want %v", got, want)
	}
	if got, want := testenv.Counter(t, env.reg, "payment_payments_total", map[string]string{"result": "cancelled"}), float64(closed); got != want {
		t.Errorf("payment_payments_total{cancelled} = %v, want %v", got, want)
	}
	// Each applied event claims its message ID and its EventID; duplicates and
	// re-sends roll back, leaving nothing.
	if got, want := claims(t, env.db), int64(2*(orders+closed)); got != want {
		t.Errorf("claims = %d, want %d", got, want)
	}
	if dlq := env.broker.DLQ("GID-payment"); len(dlq) != 0 {
		t.Errorf("dead letters = %d, want 0", len(dlq))
	}
}
