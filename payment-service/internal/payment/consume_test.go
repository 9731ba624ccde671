package payment_test

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
)

// state is what payment's handling leaves behind, clocks aside.
type state struct {
	Payments []string // order status
	Out      []string // order:tag of the events written
	Claims   int64
}

func (e *env) state(t *testing.T) state {
	t.Helper()
	var s state
	var ps []payment.Payment
	if err := e.db.Order("order_id").Find(&ps).Error; err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		s.Payments = append(s.Payments, fmt.Sprintf("%s %s %d", p.OrderID, p.Status, p.AmountCents))
	}
	if err := e.db.Table("outbox_messages").Order("msg_key, id").Pluck("CONCAT(msg_key, ':', tag)", &s.Out).Error; err != nil {
		t.Fatal(err)
	}
	e.db.Table("consumed_messages").Count(&s.Claims)
	return s
}

// A batch ends where the same messages one by one end, for each kind of
// event; a batch meeting a message applied before fails with nothing
// written, and Handle then takes each.
func TestBatchMatchesSingles(t *testing.T) {
	t.Parallel()
	type input struct {
		before []mq.Message // handled one by one first
		batch  []mq.Message
	}
	build := func(e *env) map[string]input {
		var created, refused, timeouts []mq.Message
		for i := range 10 {
			ev := e.order(i, -time.Millisecond)
			ev.PayDeadline = ev.PayDeadline.Add(time.Duration(i%2) * time.Hour) // odd ones not due
			created = append(created, createdMsg(fmt.Sprintf("m%d", i), ev))
			refused = append(refused, refusedMsg(fmt.Sprintf("c%d", i), ev))
			if i%2 == 0 {
				timeouts = append(timeouts, timeoutMsg(fmt.Sprintf("t%d", i), ev))
			}
		}
		return map[string]input{
			"created":                {batch: created},
			"created, one seen":      {before: created[3:4], batch: created},
			"refused after created":  {before: created, batch: refused},
			"refused before created": {batch: refused},
			"timeouts":               {before: created, batch: timeouts},
		}
	}
	for name := range build(&env{prefix: "x"}) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			singles, batched := newEnv(t), newEnv(t)
			batched.prefix = singles.prefix
			in := build(singles)[name]
			for _, m := range slices.Concat(in.before, in.batch) {
				mustHandle(t, singles.handler, m)
			}
			for _, m := range in.before {
				mustHandle(t, batched.handler, m)
			}
			if err := batched.handler.HandleBatch(t.Context(), in.batch); err != nil {
				if len(in.before) == 0 || errors.Is(err, mq.ErrNoBatch) {
					t.Fatalf("HandleBatch() error = %v, want nil", err)
				}
				for _, m := range in.batch { // what pkg/mq does after a failed batch
					mustHandle(t, batched.handler, m)
				}
			}
			if diff := cmp.Diff(singles.state(t), batched.state(t)); diff != "" {
				t.Errorf("batch vs one by one (-singles +batch):\n%s", diff)
			}
		})
	}
}

// The handler behind a real consumer on the embedded broker, every message
// stored twice (same message ID) and some events re-sent by their producer
// (new message ID): each event has one effect, nothing dead-lettered.
func TestConsumeThroughBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := testbroker.Start(t)
	srv.CreateTopic(events.TopicOrder, 4)
	srv.DuplicateDelivery(2)
	log := slog.New(slog.DiscardHandler)
	cfg := mq.Config{NameServers: []string{srv.NameSrvAddr()}}
	reg := prometheus.NewRegistry()
	mqm := mq.NewMetrics(reg, "payment")
	producer, err := mq.NewProducer(t.Context(), cfg, "PID-test", log, mqm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { producer.Close() })
	sub := mq.Subscription{
		Group:  "GID-payment",
		Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: events.TagCreated + " || " + events.TagClosed}},
		Batch:  e.handler.HandleBatch,
	}
	c, err := mq.Subscribe(t.Context(), cfg, sub, e.handler.Handle, log, mqm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	send := func(m mq.Message) {
		t.Helper()
		if _, err := producer.SendSync(t.Context(), mq.Outgoing{Topic: m.Topic, Tag: m.Tag, Keys: []string{m.Keys},
			ShardingKey: m.Keys, Body: m.Body}); err != nil {
			t.Fatal(err)
		}
	}
	const orders, resent, refused = 20, 5, 10
	for i := range orders {
		send(createdMsg("", e.order(i, time.Minute)))
	}
	for i := range resent {
		send(createdMsg("", e.order(i, time.Minute)))
	}
	for i := range refused {
		send(refusedMsg("", e.order(i, time.Minute)))
	}
	deliveries := float64(2 * (orders + resent + refused))
	ok := map[string]string{"group": "GID-payment", "result": "ok"}
	testenv.Eventually(t, time.Minute, "every delivery handled", func() bool {
		return testenv.Counter(t, reg, "payment_messages_consumed_total", ok) >= deliveries
	})
	for i := range orders {
		want := payment.StatusPending
		if i < refused {
			want = payment.StatusCancelled
		}
		if p := e.row(t, e.id(i)); p.Status != want || p.AmountCents != int64(100+i) {
			t.Errorf("payment of %s = %s %d, want %s %d", e.id(i), p.Status, p.AmountCents, want, 100+i)
		}
	}
	for result, want := range map[string]float64{"created": orders, "cancelled": refused} {
		if got := e.counter(t, "payment_payments_total", result); got != want {
			t.Errorf("payment_payments_total{%s} = %v, want %v", result, got, want)
		}
	}
	if dlq := srv.DLQ("GID-payment"); len(dlq) != 0 {
		t.Errorf("dead letters = %d, want 0", len(dlq))
	}
}

// The sweeper expires what is pending past its deadline and the grace, and
// nothing else.
func TestSweeper(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	overdue, recent, open := e.order(1, -time.Minute), e.order(2, -time.Second), e.order(3, time.Minute)
	for _, ev := range []events.OrderCreated{overdue, recent, open} {
		mustHandle(t, e.handler, createdMsg("m"+ev.OrderID, ev))
	}
	n, err := payment.NewSweeper(e.handler, 30*time.Second, time.Hour).SweepOnce(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("SweepOnce() = %d, %v; want 1, nil", n, err)
	}
	for ev, want := range map[events.OrderCreated]payment.Status{overdue: payment.StatusExpired, recent: payment.StatusPending, open: payment.StatusPending} {
		if got := e.row(t, ev.OrderID).Status; got != want {
			t.Errorf("%s status = %q, want %q", ev.OrderID, got, want)
		}
	}
}
