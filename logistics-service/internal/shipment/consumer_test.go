package shipment_test

import (
	"testing"
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

// The handler behind a real consumer on the embedded broker, every confirmed
// event stored twice: one shipment per order, shipped sent for every delivery.
func TestConsumeThroughBroker(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	log := testLog(t)
	producer, err := mq.NewProducer(t.Context(), env.mqCfg, "PID-order-test", log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	env.broker.DuplicateDelivery(2)
	const orders = 20
	for i := range orders {
		m := confirmedMsg(t, "", orderID(i))
		_, err := producer.SendSync(t.Context(), mq.Outgoing{
			Topic: events.TopicOrder, Tag: events.TagConfirmed, Keys: []string{orderID(i)}, ShardingKey: orderID(i), Body: m.Body,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	env.broker.DuplicateDelivery(1) // shipped events are stored once

	// Subscribed after the sends (it starts from the first offset), so no
	// shipped event is sent while duplication is on.
	sub := mq.Subscription{Group: "GID-logistics", Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: events.TagConfirmed}}}
	c, err := mq.Subscribe(t.Context(), env.mqCfg, sub, env.handler.Handle, log, env.mqm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	ok := map[string]string{"group": "GID-logistics", "result": "ok"}
	testenv.Eventually(t, time.Minute, "every delivery handled", func() bool {
		return testenv.Counter(t, env.reg, "logistics_messages_consumed_total", ok) >= 2*orders
	})
	shipped := env.shippedEvents(t)
	for i := range orders {
		id := orderID(i)
		ss := env.shipments(t, id)
		if len(ss) != 1 {
			t.Errorf("shipments of %s = %d, want 1", id, len(ss))
			continue
		}
		if len(shipped[id]) != 1 {
			t.Errorf("shipped events of %s = %d, want 1 (written with the shipment, sent once)", id, len(shipped[id]))
		}
		for _, ev := range shipped[id] {
			if ev.ShipmentID != ss[0].ShipmentID {
				t.Errorf("shipped event of %s names shipment %s, want %s", id, ev.ShipmentID, ss[0].ShipmentID)
			}
		}
	}
	if got := testenv.Counter(t, env.reg, "logistics_shipments_total", nil); got != orders {
		t.Errorf("logistics_shipments_total = %v, want %d", got, orders)
	}
}
