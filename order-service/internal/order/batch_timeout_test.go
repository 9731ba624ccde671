package order_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"seckill/order-service/internal/order"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// closedSent is a closed event in the broker, with the queue it landed on.
type closedSent struct {
	Keys    string
	QueueID int
	Event   events.OrderClosed
}

// closeState is what the GID-order-timeout handler leaves in the database
// and the broker.
type closeState struct {
	Orders []order.Order
	Claims []string
	Closed []closedSent
}

func (f fixture) closeState(t *testing.T) closeState {
	t.Helper()
	var s closeState
	if err := f.db.Order("order_id").Find(&s.Orders).Error; err != nil {
		t.Fatalf("read orders: %v", err)
	}
	rows := map[string]order.Order{}
	for _, o := range s.Orders {
		rows[o.OrderID] = o
	}
	for _, m := range f.srv.Messages(events.TopicOrder) {
		if m.Tags != events.TagClosed {
			continue
		}
		c := closedSent{Keys: m.Keys, QueueID: m.QueueID}
		if err := json.Unmarshal(m.Body, &c.Event); err != nil {
			t.Fatalf("decode closed %s: %v", m.MsgID, err)
		}
		// closed_at is the row's updated_at, whoever closed it.
		if got, want := c.Event.ClosedAt, rows[c.Event.OrderID].UpdatedAt; !got.Equal(want) {
			t.Errorf("closed event of %s: closed_at = %v, want the row's updated_at %v", c.Event.OrderID, got, want)
		}
		c.Event.ClosedAt = time.Time{}
		s.Closed = append(s.Closed, c)
	}
	slices.SortStableFunc(s.Closed, func(a, b closedSent) int { return cmp.Compare(a.Event.OrderID, b.Event.OrderID) })
	for i := range s.Orders {
		s.Orders[i].UpdatedAt = time.Time{} // the handler's clock
	}
	if err := f.db.Table("consumed_messages").Where("consumer = ?", "GID-order-timeout").Order("msg_key").
		Pluck("msg_key", &s.Claims).Error; err != nil {
		t.Fatalf("read claims: %v", err)
	}
	return s
}

// timeoutMsgs returns the timeouts t<i> of orders o<i>.
func timeoutMsgs(t *testing.T, n int) []mq.Message {
	ms := make([]mq.Message, n)
	for i := range ms {
		ms[i] = timeoutMsg(t, fmt.Sprintf("t%02d", i), fmt.Sprintf("o%02d", i))
	}
	return ms
}

// closeFixture is a fixture holding the orders of created: o01 and o02
// paid, o04 shipped, o03 closed by the sweeper, the others still created.
func closeFixture(t *testing.T, created []mq.Message) fixture {
	t.Helper()
	f := setup(t)
	for _, m := range created {
		mustApply(t, f, m)
	}
	for _, id := range []string{"o01", "o02", "o04"} {
		mustApply(t, f, paidMsg(t, "p"+id, id))
	}
	mustApply(t, f, shippedMsg(t, "s04", "o04"))
	if err := f.db.Model(&order.Order{}).Where("order_id = ?", "o03").
		Updates(map[string]any{"status": order.StatusClosed, "close_reason": order.ReasonSweeper}).Error; err != nil {
		t.Fatal(err)
	}
	return f
}

// mustTimeout gives each of ms to Timeout alone.
func mustTimeout(t *testing.T, f fixture, ms ...mq.Message) {
	t.Helper()
	for _, m := range ms {
		if err := f.h.Timeout(t.Context(), m); err != nil {
			t.Fatalf("Timeout(%s) error = %v", m.ID, err)
		}
	}
}

// closeSingles is the state Timeout alone reaches from ms on closeFixture.
func closeSingles(t *testing.T, created []mq.Message, ms ...mq.Message) closeState {
	t.Helper()
	f := closeFixture(t, created)
	mustTimeout(t, f, ms...)
	return f.closeState(t)
}

func TestTimeoutBatchMatchesSingles(t *testing.T) {
	created, ms := createdMsgs(t, 10), timeoutMsgs(t, 10)
	want := closeSingles(t, created, ms...)
	f := closeFixture(t, created)
	if err := f.h.TimeoutBatch(t.Context(), ms); err != nil {
		t.Fatalf("TimeoutBatch(%d timeouts) error = %v, want nil", len(ms), err)
	}
	if diff := gocmp.Diff(want, f.closeState(t)); diff != "" {
		t.Errorf("state after TimeoutBatch differs from Timeout one by one (-singles +batch):\n%s", diff)
	}
	// 6 created orders closed, o03's closed event sent again, none for the
	// paid and shipped ones.
	closed := 0
	for _, o := range want.Orders {
		if o.Status == order.StatusClosed && o.CloseReason == order.ReasonPayTimeout {
			closed++
		}
	}
	if closed != 6 || len(want.Closed) != 7 || len(want.Claims) != 20 {
		t.Errorf("singles state: %d closed by timeout, %d closed events, %d claims; want 6, 7, 20",
			closed, len(want.Closed), len(want.Claims))
	}
}

// A batch meeting a timeout applied before or an order not persisted yet
// fails with nothing written or sent; pkg/mq then gives each message to
// Timeout, which ends where Timeout alone would have.
func TestTimeoutBatchFallsBack(t *testing.T) {
	created, ms := createdMsgs(t, 10), timeoutMsgs(t, 10)
	tests := []struct {
		name    string
		before  []mq.Message // given to Timeout alone before the batch
		batch   []mq.Message
		missing string // the order without a row: Timeout asks for a retry
	}{
		{"message delivered before", []mq.Message{ms[5]}, ms, ""},
		{"event re-sent before", []mq.Message{timeoutMsg(t, "r05", "o05")}, ms, ""},
		{"order not persisted yet", nil, append(ms[:9:9], timeoutMsg(t, "t99", "o99")), "o99"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeouts := func(f fixture) {
				t.Helper()
				for _, m := range tc.batch {
					err := f.h.Timeout(t.Context(), m)
					if m.Keys == tc.missing {
						if err == nil || errors.Is(err, mq.ErrPermanent) {
							t.Fatalf("Timeout(%s) on a missing order error = %v, want a retryable error", m.ID, err)
						}
					} else if err != nil {
						t.Fatalf("Timeout(%s) error = %v", m.ID, err)
					}
				}
			}
			g := closeFixture(t, created)
			mustTimeout(t, g, tc.before...)
			timeouts(g)
			want := g.closeState(t)

			f := closeFixture(t, created)
			mustTimeout(t, f, tc.before...)
			before := f.closeState(t)
			err := f.h.TimeoutBatch(t.Context(), tc.batch)
			if err == nil || errors.Is(err, mq.ErrNoBatch) {
				t.Fatalf("TimeoutBatch error = %v, want a failed batch", err)
			}
			if diff := gocmp.Diff(before, f.closeState(t)); diff != "" {
				t.Fatalf("failed batch left writes or sends (-before +after):\n%s", diff)
			}
			timeouts(f)
			if diff := gocmp.Diff(want, f.closeState(t)); diff != "" {
				t.Errorf("state after the fallback differs from Timeout one by one (-singles +fallback):\n%s", diff)
			}
		})
	}
}

// When the closed send fails after the commit, the batch fails and Timeout
// of each message finds its order closed and sends its closed event.
func TestTimeoutBatchClosedSendFails(t *testing.T) {
	created, ms := createdMsgs(t, 10), timeoutMsgs(t, 10)
	want := closeSingles(t, created, ms...)
	f := closeFixture(t, created)
	f.srv.RefuseSends(true)
	err := f.h.TimeoutBatch(t.Context(), ms)
	f.srv.RefuseSends(false)
	if err == nil || errors.Is(err, mq.ErrNoBatch) {
		t.Fatalf("TimeoutBatch with sends refused error = %v, want a failed batch", err)
	}
	got := f.closeState(t)
	if len(got.Claims) != 20 || len(got.Closed) != 0 {
		t.Fatalf("after the failed send: %d claims, %d closed events; want 20, 0", len(got.Claims), len(got.Closed))
	}
	mustTimeout(t, f, ms...)
	if diff := gocmp.Diff(want, f.closeState(t)); diff != "" {
		t.Errorf("state after the fallback differs from Timeout one by one (-singles +fallback):\n%s", diff)
	}
}

func TestTimeoutBatchNotForMe(t *testing.T) {
	created, ms := createdMsgs(t, 10), timeoutMsgs(t, 3)
	f := closeFixture(t, created)
	before := f.closeState(t)
	with := func(m mq.Message) []mq.Message { return []mq.Message{ms[0], m, ms[2]} }
	redelivered := ms[1]
	redelivered.ReconsumeTimes = 1
	tests := []struct {
		name string
		ms   []mq.Message
	}{
		{"created", with(createdMsg(t, "c1", "o01"))},
		{"paid", with(paidMsg(t, "p1", "o01"))},
		{"redelivery", with(redelivered)},
		{"bad JSON", with(mq.Message{ID: "x1", Tag: events.TagTimeout, Body: []byte("{nope")})},
		{"wrong version", with(mq.Message{ID: "x2", Tag: events.TagTimeout, Body: []byte(`{"version":99,"order_id":"o01"}`)})},
		{"no order id", with(mq.Message{ID: "x3", Tag: events.TagTimeout, Body: []byte(`{"version":1}`)})},
		{"same message twice", with(ms[0])},
		{"same event twice", with(timeoutMsg(t, "r00", "o00"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.h.TimeoutBatch(t.Context(), tc.ms); !errors.Is(err, mq.ErrNoBatch) {
				t.Errorf("TimeoutBatch(%s) error = %v, want %v", tc.name, err, mq.ErrNoBatch)
			}
			if diff := gocmp.Diff(before, f.closeState(t)); diff != "" {
				t.Errorf("TimeoutBatch(%s) left writes or sends (-before +after):\n%s", tc.name, diff)
			}
		})
	}
}

// A batch costs a fixed number of statements: BEGIN, the claims, the
// locking read, the close, COMMIT; Timeout costs five per message.
func TestTimeoutBatchStatements(t *testing.T) {
	created := createdMsgs(t, 20)
	f := setup(t)
	for _, m := range created {
		mustApply(t, f, m)
	}
	sqlDB, err := f.db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // one session: its counter sees every statement
	ms := timeoutMsgs(t, 20)
	single := statements(t, f.db, func() { mustTimeout(t, f, ms[:10]...) })
	batch := statements(t, f.db, func() {
		if err := f.h.TimeoutBatch(t.Context(), ms[10:]); err != nil {
			t.Fatalf("TimeoutBatch error = %v", err)
		}
	})
	t.Logf("10 timeouts: %d statements one by one, %d as a batch", single, batch)
	if batch > 5 {
		t.Errorf("statements of a batch of 10 = %d, want at most 5", batch)
	}
	for _, m := range ms {
		if st := f.status(t, m.Keys); st != order.StatusClosed {
			t.Errorf("status of %s = %s, want closed", m.Keys, st)
		}
	}
}
