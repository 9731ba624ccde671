package shipment_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"

	"seckill/logistics-service/internal/shipment"
	"seckill/logistics-service/migrations"
)

// env is a logistics handler on a fresh database and an embedded broker.
type env struct {
	db      *gorm.DB
	broker  *testbroker.Server
	handler *shipment.Handler
	reg     *prometheus.Registry
	mqm     *mq.Metrics
	mqCfg   mq.Config
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log := testLog(t)
	gdb := testenv.MariaDB(t, dedup.Migrations, outbox.Migrations, migrations.FS)
	srv := testbroker.Start(t)
	srv.CreateTopic(events.TopicOrder, 4)
	reg := prometheus.NewRegistry()
	mqm := mq.NewMetrics(reg, "logistics")
	cfg := mq.Config{NameServers: []string{srv.NameSrvAddr()}}
	producer, err := mq.NewProducer(t.Context(), cfg, testenv.Unique(t, "PID_"), log, mqm)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { producer.Close() })
	// shipped events reach the broker through the outbox relay, as in the service.
	relay := outbox.NewRelay(gdb, producer, "logistics", outbox.Options{Poll: 20 * time.Millisecond}, log, reg)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()
	t.Cleanup(func() { stop(); <-done })
	return &env{
		db:      gdb,
		broker:  srv,
		handler: shipment.NewHandler(gdb, relay, log, shipment.NewMetrics(reg)),
		reg:     reg,
		mqm:     mqm,
		mqCfg:   cfg,
	}
}

func confirmedMsg(t *testing.T, msgID, orderID string) mq.Message {
	t.Helper()
	body, err := json.Marshal(events.OrderConfirmed{
		Version: events.Version, EventID: events.EventID(orderID, events.TagConfirmed), OrderID: orderID,
		UserID: "u1", ProductID: "p1", Quantity: 1, ConfirmedAt: time.Now().UTC(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: events.TagConfirmed, Keys: orderID, Body: body}
}

func mustHandle(t *testing.T, h *shipment.Handler, m mq.Message) {
	t.Helper()
	if err := h.Handle(t.Context(), m); err != nil {
		t.Fatalf("Handle(%s %s) error = %v, want nil", m.Tag, m.ID, err)
	}
}

// shipments returns the rows of orderID.
func (e *env) shipments(t *testing.T, orderID string) []shipment.Shipment {
	t.Helper()
	var ss []shipment.Shipment
	if err := e.db.Where("order_id = ?", orderID).Find(&ss).Error; err != nil {
		t.Fatalf("read shipments of %s: %v", orderID, err)
	}
	return ss
}

func (e *env) claims(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := e.db.Table("consumed_messages").Where("consumer = ?", shipment.Consumer).Count(&n).Error; err != nil {
		t.Fatalf("count consumed_messages: %v", err)
	}
	return n
}

// shippedEvents returns the shipped events stored on the broker, by order
// ID, once the outbox is relayed.
func (e *env) shippedEvents(t *testing.T) map[string][]events.OrderShipped {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "outbox relayed", func() bool {
		var n int64
		e.db.Table("outbox_messages").Count(&n)
		return n == 0
	})
	out := map[string][]events.OrderShipped{}
	for _, m := range e.broker.Messages(events.TopicOrder) {
		if m.Tags != events.TagShipped {
			continue
		}
		var ev events.OrderShipped
		if err := json.Unmarshal(m.Body, &ev); err != nil {
			t.Fatalf("shipped message %s body %q: %v", m.MsgID, m.Body, err)
		}
		if m.Keys != ev.OrderID {
			t.Errorf("shipped message %s keys = %q, want the order ID %q", m.MsgID, m.Keys, ev.OrderID)
		}
		out[ev.OrderID] = append(out[ev.OrderID], ev)
	}
	return out
}
