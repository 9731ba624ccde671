package order_test

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/order-service/internal/order"
	"seckill/order-service/migrations"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
	"seckill/pkg/testenv"
)

type nopRelay struct{}

func (nopRelay) Notify() {}

type env struct {
	db *gorm.DB
	h  *order.Handler
}

func newEnv(t *testing.T) env {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations, outbox.Migrations, migrations.FS)
	log := slog.New(slog.NewJSONHandler(t.Output(), nil))
	return env{db: gdb, h: order.NewHandler(gdb, nopRelay{}, log, order.NewMetrics(prometheus.NewRegistry()))}
}

// ev builds the message of one event of order id; n tells re-sends apart
// (a new message ID, the same event ID).
func ev(tag, id string, n int) mq.Message {
	now := time.Now().UTC()
	var body any
	switch tag {
	case events.TagCreated:
		body = events.Created(events.OrderCreated{OrderID: id, UserID: "u", ProductID: "p", Quantity: 1, AmountCents: 5,
			CreatedAt: now, PayDeadline: now.Add(time.Minute)})
	case events.TagPaid:
		body = events.Paid(events.OrderPaid{OrderID: id, AmountCents: 5, PaidAt: now})
	case events.TagDeducted:
		body = events.Deducted(events.OrderDeducted{OrderID: id, ProductID: "p", Quantity: 1, SaleID: 1, DeductedAt: now})
	case events.TagShipped:
		body = events.Shipped(events.OrderShipped{OrderID: id, ShipmentID: "s-" + id, ShippedAt: now})
	case "expired", "refused":
		reason := events.ReasonPayTimeout
		if tag == "refused" {
			reason = events.ReasonOutOfStock
		}
		tag, body = events.TagClosed, events.Closed(events.OrderClosed{OrderID: id, ProductID: "p", Quantity: 1, Reason: reason, ClosedAt: now})
	}
	return mq.Message{ID: fmt.Sprintf("%s-%s-%d", id, tag, n), Topic: events.TopicOrder, Tag: tag, Keys: id, Body: events.Marshal(body)}
}

// result is an order's end: status, close reason, deducted, and the tags of
// the events written for it.
type result struct {
	Status, Reason string
	Deducted       bool
	Out            []string
}

func (e env) result(t *testing.T, id string) result {
	t.Helper()
	o, err := order.Get(e.db, id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := e.db.Table("outbox_messages").Where("msg_key = ?", id).Order("id").Pluck("tag", &out).Error; err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		out = nil
	}
	return result{o.Status, o.CloseReason, o.Deducted, out}
}

// Order-service follows the decisions made elsewhere, in whatever order
// they arrive, and confirms a paid and deducted order exactly once.
func TestFollow(t *testing.T) {
	t.Parallel()
	confirmed := []string{events.TagConfirmed}
	tests := []struct {
		name string
		seq  []string // tags; a repeated tag is a re-send (new message ID)
		want result
	}{
		{"paid then deducted", []string{"created", "paid", "deducted"}, result{"paid", "", true, confirmed}},
		{"deducted then paid", []string{"created", "deducted", "paid"}, result{"paid", "", true, confirmed}},
		{"re-sent events", []string{"created", "paid", "paid", "deducted", "deducted", "created"}, result{"paid", "", true, confirmed}},
		{"shipped", []string{"created", "paid", "deducted", "shipped"}, result{"shipped", "", true, confirmed}},
		{"paid, not deducted yet", []string{"created", "paid"}, result{"paid", "", false, nil}},
		{"expired", []string{"created", "expired"}, result{"closed", "pay_timeout", false, nil}},
		{"expired, then deducted", []string{"created", "expired", "deducted"}, result{"closed", "pay_timeout", true, nil}},
		{"paid, refused by inventory", []string{"created", "paid", "refused"}, result{"closed", "out_of_stock", false, nil}},
		{"refused, then paid", []string{"created", "refused", "paid"}, result{"closed", "out_of_stock", false, nil}},
		{"paid, then an expiry the arbiter never sends", []string{"created", "paid", "expired"}, result{"paid", "", false, nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			seen := map[string]int{}
			for _, tag := range tc.seq {
				seen[tag]++
				m := ev(tag, "o1", seen[tag])
				if err := e.h.Apply(t.Context(), m); err != nil {
					t.Fatalf("Apply(%s) error = %v", m.ID, err)
				}
				if err := e.h.Apply(t.Context(), m); err != nil { // redelivered
					t.Fatalf("Apply(%s) again error = %v", m.ID, err)
				}
			}
			if diff := cmp.Diff(tc.want, e.result(t, "o1")); diff != "" {
				t.Errorf("after %v (-want +got):\n%s", tc.seq, diff)
			}
		})
	}
}

// An event for an order not persisted yet asks for a redelivery (not a dead
// letter) and leaves nothing behind.
func TestBeforeCreated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tag := range []string{"paid", "deducted", "expired", "shipped"} {
		err := e.h.Apply(t.Context(), ev(tag, "o1", 1))
		if err == nil || errors.Is(err, mq.ErrPermanent) {
			t.Errorf("Apply(%s before created) error = %v, want a retryable error", tag, err)
		}
	}
	var claims int64
	e.db.Table("consumed_messages").Count(&claims)
	if claims != 0 {
		t.Errorf("claims after refused events = %d, want 0", claims)
	}
	for _, tag := range []string{"created", "paid", "deducted"} {
		if err := e.h.Apply(t.Context(), ev(tag, "o1", 1)); err != nil {
			t.Fatalf("Apply(%s) error = %v", tag, err)
		}
	}
	if got := e.result(t, "o1"); got.Status != "paid" || !slices.Equal(got.Out, []string{events.TagConfirmed}) {
		t.Errorf("after the redeliveries: %+v, want paid and confirmed", got)
	}
}

// A batch of each kind ends where the same messages one by one end.
func TestBatchMatchesSingles(t *testing.T) {
	t.Parallel()
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = fmt.Sprintf("o%02d", i)
	}
	msgs := func(tag string, from int) []mq.Message {
		var ms []mq.Message
		for _, id := range ids[from:] {
			ms = append(ms, ev(tag, id, 1))
		}
		return ms
	}
	steps := [][]mq.Message{msgs("created", 0), msgs("paid", 0), msgs("deducted", 4), msgs("expired", 8), msgs("shipped", 4)[:4]}
	singles, batched := newEnv(t), newEnv(t)
	for _, ms := range steps {
		for _, m := range ms {
			if err := singles.h.Apply(t.Context(), m); err != nil {
				t.Fatalf("Apply(%s) error = %v", m.ID, err)
			}
		}
		if err := batched.h.ApplyBatch(t.Context(), ms); err != nil {
			t.Fatalf("ApplyBatch(%d %s) error = %v", len(ms), ms[0].Tag, err)
		}
	}
	for _, id := range ids {
		if diff := cmp.Diff(singles.result(t, id), batched.result(t, id)); diff != "" {
			t.Errorf("%s: batch vs one by one (-singles +batch):\n%s", id, diff)
		}
	}
	if got := batched.result(t, ids[4]); got.Status != "shipped" || len(got.Out) != 1 {
		t.Errorf("%s after the batches = %+v, want shipped, confirmed once", ids[4], got)
	}
	// A batch meeting a message applied before fails whole, writing nothing.
	m := ev("paid", "o99", 1)
	if err := batched.h.ApplyBatch(t.Context(), []mq.Message{ev("created", "o99", 1), ev("created", ids[0], 1)}); err == nil {
		t.Errorf("ApplyBatch with a created event applied before = nil, want an error")
	}
	if _, err := order.Get(batched.db, m.Keys); !errors.Is(err, order.ErrNotFound) {
		t.Errorf("failed batch persisted o99: %v", err)
	}
}

// TestCreatedKeepsSaleID: the order row keeps the sale its units came from,
// as the created event carries it.
func TestCreatedKeepsSaleID(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC()
	body := events.Created(events.OrderCreated{OrderID: "o-sale", UserID: "u", ProductID: "p", Quantity: 1, AmountCents: 5,
		CreatedAt: now, PayDeadline: now.Add(time.Minute), SaleID: 7})
	m := mq.Message{ID: "o-sale-created-1", Topic: events.TopicOrder, Tag: events.TagCreated, Keys: "o-sale", Body: events.Marshal(body)}
	if err := e.h.Apply(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	o, err := order.Get(e.db, "o-sale")
	if err != nil || o.SaleID != 7 {
		t.Errorf("order row = %+v (%v), want sale_id 7", o, err)
	}
}
