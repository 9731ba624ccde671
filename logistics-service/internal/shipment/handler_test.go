package shipment_test

import (
	"errors"
	"fmt"
	"testing"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"

	"seckill/logistics-service/internal/shipment"
)

// A confirmed event delivered twice ships once, and both deliveries send
// shipped (the second may follow a crash between commit and send), carrying
// the one shipment ID.
func TestConfirmedRedelivery(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		second string // message ID of the second delivery
	}{
		{"same message delivered twice", "m1"},
		{"same event re-sent with a new message ID", "m2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			mustHandle(t, env.handler, confirmedMsg(t, "m1", "o1"))
			claims := env.claims(t)
			mustHandle(t, env.handler, confirmedMsg(t, tc.second, "o1"))

			ss := env.shipments(t, "o1")
			if len(ss) != 1 || ss[0].Status != shipment.StatusCreated || ss[0].ShipmentID == "" {
				t.Fatalf("shipments of o1 = %+v, want one created shipment", ss)
			}
			if got := env.claims(t); got != claims {
				t.Errorf("claims after the duplicate = %d, want %d", got, claims)
			}
			if got := testenv.Counter(t, env.reg, "logistics_shipments_total", nil); got != 1 {
				t.Errorf("logistics_shipments_total = %v, want 1", got)
			}
			shipped := env.shippedEvents(t)["o1"]
			// Written with the shipment (pkg/outbox): once, whatever the deliveries.
			if len(shipped) != 1 {
				t.Fatalf("shipped events of o1 = %d, want 1", len(shipped))
			}
			for _, ev := range shipped {
				if ev.ShipmentID != ss[0].ShipmentID || ev.EventID != events.EventID("o1", events.TagShipped) || ev.Version != events.Version {
					t.Errorf("shipped event = %+v, want shipment %s, event_id o1:shipped", ev, ss[0].ShipmentID)
				}
			}
		})
	}
}

// A transaction that fails (the table is gone for a moment) leaves no claim,
// so the redelivery ships the order.
func TestFailedTxLeavesNoClaim(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	if err := env.db.Exec("RENAME TABLE shipments TO shipments_away").Error; err != nil {
		t.Fatal(err)
	}
	err := env.handler.Handle(t.Context(), confirmedMsg(t, "m1", "o1"))
	if err == nil || errors.Is(err, mq.ErrPermanent) {
		t.Fatalf("Handle(without shipments table) error = %v, want a retryable error", err)
	}
	if got := env.claims(t); got != 0 {
		t.Fatalf("claims after a failed tx = %d, want 0", got)
	}
	if err := env.db.Exec("RENAME TABLE shipments_away TO shipments").Error; err != nil {
		t.Fatal(err)
	}
	mustHandle(t, env.handler, confirmedMsg(t, "m1", "o1"))
	if ss := env.shipments(t, "o1"); len(ss) != 1 {
		t.Errorf("shipments of o1 after the redelivery = %d, want 1", len(ss))
	}
	if got := len(env.shippedEvents(t)["o1"]); got != 1 {
		t.Errorf("shipped events of o1 = %d, want 1", got)
	}
}

// While the broker refuses sends the shipment is made and acked, and its
// shipped event waits in the outbox; once the broker takes it again the
// event goes out, once, and nothing shipped twice.
func TestShippedSurvivesBrokerRefusal(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.broker.RefuseSends(true)
	mustHandle(t, env.handler, confirmedMsg(t, "m1", "o1"))
	var waiting int64
	env.db.Table("outbox_messages").Count(&waiting)
	if waiting != 1 {
		t.Errorf("outbox rows while the broker refuses = %d, want 1", waiting)
	}
	env.broker.RefuseSends(false)
	mustHandle(t, env.handler, confirmedMsg(t, "m1", "o1")) // redelivered meanwhile
	if ss := env.shipments(t, "o1"); len(ss) != 1 {
		t.Errorf("shipments of o1 = %d, want 1", len(ss))
	}
	if got := len(env.shippedEvents(t)["o1"]); got != 1 {
		t.Errorf("shipped events of o1 = %d, want 1", got)
	}
}

func TestPoisonMessagesArePermanent(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	valid := confirmedMsg(t, "m0", "o1")
	tests := []struct {
		name string
		msg  mq.Message
	}{
		{"bad json", mq.Message{ID: "m1", Tag: events.TagConfirmed, Body: []byte(`{"order_id":`)}},
		{"unexpected tag", mq.Message{ID: "m2", Tag: events.TagPaid, Body: valid.Body}},
		{"wrong version", mq.Message{ID: "m3", Tag: events.TagConfirmed, Body: []byte(`{"version":2,"event_id":"o1:confirmed","order_id":"o1"}`)}},
		{"no order id", mq.Message{ID: "m4", Tag: events.TagConfirmed, Body: []byte(`{"version":1,"event_id":"x"}`)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := env.handler.Handle(t.Context(), tc.msg); !errors.Is(err, mq.ErrPermanent) {
				t.Errorf("Handle(%s) error = %v, want mq.ErrPermanent", tc.name, err)
			}
		})
	}
	if got := env.claims(t); got != 0 {
		t.Errorf("claims after poison messages = %d, want 0", got)
	}
}

func orderID(i int) string { return fmt.Sprintf("o%04d", i) }
