package payment_test

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
	"seckill/pkg/testenv"

	"seckill/payment-service/internal/payment"
	"seckill/payment-service/migrations"
)

// env is payment-service's logic on a fresh database and the real Redis;
// the events its decisions write stay in the outbox table (the relay is
// pkg/outbox's, tested there).
type env struct {
	db      *gorm.DB
	rdb     *redis.Client
	reg     *prometheus.Registry
	handler *payment.Handler
	svc     *payment.Service
	prefix  string // of this test's order IDs
}

type nopRelay struct{}

func (nopRelay) Notify() {}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newEnv(t testing.TB) *env {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations, outbox.Migrations, migrations.FS)
	rdb := testenv.Redis(t)
	reg := prometheus.NewRegistry()
	m := payment.NewMetrics(reg)
	store := payment.NewStore(gdb, nopRelay{})
	log := testLog(t)
	reservations := payment.NewReservations(rdb)
	h := payment.NewHandler(store, reservations, log, m)
	return &env{db: gdb, rdb: rdb, reg: reg, handler: h, svc: payment.NewService(store, reservations, log, m),
		prefix: testenv.Unique(t, "o")}
}

// id is this test's i-th order ID.
func (e *env) id(i int) string { return fmt.Sprintf("%s-%04d", e.prefix, i) }

// order is the created event of order i, accepted now with deadline in.
func (e *env) order(i int, in time.Duration) events.OrderCreated {
	now := time.Now().UTC().Truncate(time.Millisecond)
	return events.Created(events.OrderCreated{
		OrderID: e.id(i), UserID: "u" + strconv.Itoa(i), ProductID: "p1", Quantity: 1,
		AmountCents: int64(100 + i), CreatedAt: now, PayDeadline: now.Add(in),
	})
}

// reserve writes order i's reservation the way the intake script does
// (deadline in from now) and returns its created event.
func (e *env) reserve(t testing.TB, i int, in time.Duration) events.OrderCreated {
	t.Helper()
	return e.reserveAt(t, i, time.Now().UTC().Add(in))
}

// reserveMany writes the reservations of orders 0..len(deadlines)-1 in one
// pipeline, order i with deadlines[i].
func (e *env) reserveMany(t testing.TB, deadlines []time.Time) []events.OrderCreated {
	t.Helper()
	evs := make([]events.OrderCreated, len(deadlines))
	pipe := e.rdb.Pipeline()
	keys := make([]string, len(deadlines))
	for i, d := range deadlines {
		ev := e.order(i, 0)
		ev.PayDeadline = d.UTC().Truncate(time.Millisecond)
		evs[i], keys[i] = ev, events.OrderKey(ev.OrderID)
		pipe.HSet(t.Context(), keys[i], "order_id", ev.OrderID, "user_id", ev.UserID, "product_id", ev.ProductID,
			"quantity", ev.Quantity, "amount_cents", ev.AmountCents, "created_at", ev.CreatedAt.UnixMilli(),
			"pay_deadline", ev.PayDeadline.UnixMilli())
	}
	if _, err := pipe.Exec(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rdb.Del(context.Background(), keys...) })
	return evs
}

// reserveAt writes order i's reservation with the given deadline.
func (e *env) reserveAt(t testing.TB, i int, deadline time.Time) events.OrderCreated {
	t.Helper()
	ev := e.order(i, 0)
	ev.PayDeadline = deadline.UTC().Truncate(time.Millisecond)
	key := events.OrderKey(ev.OrderID)
	err := e.rdb.HSet(t.Context(), key, "order_id", ev.OrderID, "user_id", ev.UserID, "product_id", ev.ProductID,
		"quantity", ev.Quantity, "amount_cents", ev.AmountCents, "created_at", ev.CreatedAt.UnixMilli(),
		"pay_deadline", ev.PayDeadline.UnixMilli()).Err()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.rdb.Del(t.Context(), key) })
	return ev
}

func message(msgID, tag, orderID string, ev any) mq.Message {
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: tag, Keys: orderID, Body: events.Marshal(ev)}
}

func createdMsg(msgID string, ev events.OrderCreated) mq.Message {
	return message(msgID, events.TagCreated, ev.OrderID, ev)
}

func timeoutMsg(msgID string, evs ...events.OrderCreated) mq.Message {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.OrderID
	}
	return message(msgID, events.TagTimeout, ids[0], events.Timeout(ids))
}

func refusedMsg(msgID string, ev events.OrderCreated) mq.Message {
	return message(msgID, events.TagClosed, ev.OrderID, events.Closed(events.OrderClosed{
		OrderID: ev.OrderID, ProductID: ev.ProductID, Quantity: ev.Quantity, UserID: ev.UserID,
		Reason: events.ReasonOutOfStock, ClosedAt: time.Now().UTC(),
	}))
}

// row reads order id's payment; status "" when there is none.
func (e *env) row(t *testing.T, id string) payment.Payment {
	t.Helper()
	var ps []payment.Payment
	if err := e.db.Where("order_id = ?", id).Find(&ps).Error; err != nil {
		t.Fatal(err)
	}
	if len(ps) == 0 {
		return payment.Payment{}
	}
	return ps[0]
}

// out lists the tags of the events written for order id, in order.
func (e *env) out(t *testing.T, id string) []string {
	t.Helper()
	var tags []string
	if err := e.db.Table("outbox_messages").Where("msg_key = ?", id).Order("id").Pluck("tag", &tags).Error; err != nil {
		t.Fatal(err)
	}
	if len(tags) == 0 {
		return nil
	}
	return tags
}

func (e *env) counter(t *testing.T, name, result string) float64 {
	t.Helper()
	return testenv.Counter(t, e.reg, name, map[string]string{"result": result})
}

func mustHandle(t *testing.T, h *payment.Handler, m mq.Message) {
	t.Helper()
	if err := h.Handle(t.Context(), m); err != nil {
		t.Fatalf("Handle(%s %s) error = %v, want nil", m.Tag, m.ID, err)
	}
}
