package payment_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

// env is a payment service on a fresh database and an embedded broker.
type env struct {
	db       *gorm.DB
	broker   *testbroker.Server
	handler  *payment.Handler
	notifier *payment.Notifier
	svc      *payment.Service
	reg      *prometheus.Registry
	mqm      *mq.Metrics
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log := testLog(t)
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	srv := testbroker.Start(t)
	srv.CreateTopic(events.TopicOrder, 4)
	reg := prometheus.NewRegistry()
	mqm := mq.NewMetrics(reg, "payment")
	producer, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}},
		testenv.Unique(t, "PID_"), log, mqm)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { producer.Close() })
	notifier := payment.NewNotifier(producer, log, 4, 20*time.Millisecond)
	t.Cleanup(func() { closeNotifier(t, notifier) }) // before the producer closes
	m := payment.NewMetrics(reg)
	return &env{
		db:       gdb,
		broker:   srv,
		handler:  payment.NewHandler(gdb, log, m),
		notifier: notifier,
		svc:      payment.NewService(gdb, notifier, log, m),
		reg:      reg,
		mqm:      mqm,
	}
}

func closeNotifier(t *testing.T, n *payment.Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		t.Errorf("Notifier.Close: %v", err)
	}
}

// paidEvents returns the paid events stored on the broker, by order ID.
func (e *env) paidEvents(t *testing.T) map[string][]events.OrderPaid {
	t.Helper()
	out := map[string][]events.OrderPaid{}
	for _, m := range e.broker.Messages(events.TopicOrder) {
		if m.Tags != events.TagPaid {
			continue
		}
		var ev events.OrderPaid
		if err := json.Unmarshal(m.Body, &ev); err != nil {
			t.Fatalf("paid message %s body %q: %v", m.MsgID, m.Body, err)
		}
		if m.Keys != ev.OrderID {
			t.Errorf("paid message %s keys = %q, want the order ID %q", m.MsgID, m.Keys, ev.OrderID)
		}
		out[ev.OrderID] = append(out[ev.OrderID], ev)
	}
	return out
}
