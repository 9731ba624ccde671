package stock_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"seckill/inventory-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

func TestCreatedRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 10, 5)
	o := e.newOrder(t, p, "u1", 2)
	e.reserve(t, o)

	for i, m := range []mq.Message{
		createdMsg(t, "m1", o), // first delivery
		createdMsg(t, "m1", o), // broker redelivery: same message ID
		createdMsg(t, "m2", o), // producer re-send: same event ID, new message ID
	} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(delivery %d, msg %s) error = %v, want nil", i, m.ID, err)
		}
	}
	if got := e.dbProduct(t, p).Sold; got != 2 {
		t.Errorf("sold after three deliveries of one created = %d, want 2", got)
	}
	if got := e.count(t, "SELECT COUNT(*) FROM stock_movements WHERE order_id = ?", o.id); got != 1 {
		t.Errorf("movements of %s = %d, want 1", o.id, got)
	}
	// The ledger line and the deducted event were written with the
	// deduction (pkg/outbox): once, whatever the deliveries.
	e.relayed(t, 2)
	lines := sent[events.StockMovement](t, e.broker, events.TopicStockLedger)
	if len(lines) != 1 {
		t.Fatalf("ledger lines sent = %d, want 1", len(lines))
	}
	if got := e.orderEvents(t, o.id); !slices.Equal(got, []string{events.TagDeducted}) {
		t.Errorf("order events of %s = %v, want [deducted]", o.id, got)
	}
	for _, l := range lines {
		if l.EventID != events.EventID(o.id, events.MovementDeduct) || l.Delta != -2 || l.Kind != events.MovementDeduct {
			t.Errorf("ledger line = %+v, want deduct -2 of %s", l, o.id)
		}
	}
}

func TestClosedRedelivery(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 10, 5)
	o := e.newOrder(t, p, "u1", 3)
	e.reserve(t, o)
	if err := e.reserver.Handle(t.Context(), createdMsg(t, "c1", o)); err != nil {
		t.Fatalf("Handle(created) error = %v", err)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 7 {
		t.Fatalf("redis stock after the reservation = %d, want 7", got)
	}

	for i, m := range []mq.Message{closedMsg(t, "x1", o), closedMsg(t, "x1", o), closedMsg(t, "x2", o)} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(closed delivery %d, msg %s) error = %v, want nil", i, m.ID, err)
		}
	}
	pr := e.dbProduct(t, p)
	if pr.Sold != 0 || pr.Available() != 10 {
		t.Errorf("DB after three deliveries of one closed: sold %d available %d, want 0 and 10", pr.Sold, pr.Available())
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 10 {
		t.Errorf("redis stock after three deliveries of one closed = %d, want 10 (given back once)", got)
	}
	if got := e.userCount(t, p, "u1"); got != 0 {
		t.Errorf("redis per-user count of u1 after the close = %d, want 0", got)
	}
	rel, err := e.store.Movement(t.Context(), o.id, events.MovementRelease)
	if err != nil {
		t.Fatal(err)
	}
	if !rel.Applied || !rel.RedisApplied || rel.Quantity != 3 {
		t.Errorf("release movement = %+v, want applied, given back in redis, quantity 3", rel)
	}
}

// The Redis give-back stays single even when the Redis dedup record is gone
// (expired) and the close is delivered again: the DB flag still guards it.
func TestClosedAfterRedisRecordExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 5, 5)
	o := e.newOrder(t, p, "u1", 1)
	e.reserve(t, o)
	for _, m := range []mq.Message{createdMsg(t, "c1", o), closedMsg(t, "x1", o)} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s %s) error = %v", m.Tag, m.ID, err)
		}
	}
	if err := e.rdb.Del(t.Context(), "sk:dedup:inventory.giveback:"+events.EventID(o.id, events.TagClosed)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.reserver.Handle(t.Context(), closedMsg(t, "x2", o)); err != nil {
		t.Fatalf("Handle(closed again) error = %v", err)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 5 {
		t.Errorf("redis stock = %d, want 5", got)
	}
}

// A failing transaction leaves no dedup record: a close that arrives before
// its deduction fails (retry later), and the same message applies once the
// deduction is in.
func TestFailedTransactionLeavesNoClaim(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 4, 4)
	o := e.newOrder(t, p, "u1", 1)
	e.reserve(t, o)

	closed := closedMsg(t, "early", o)
	err := e.reserver.Handle(t.Context(), closed)
	if !errors.Is(err, stock.ErrNotDeducted) || errors.Is(err, mq.ErrPermanent) {
		t.Fatalf("Handle(closed before created) error = %v, want ErrNotDeducted (retryable)", err)
	}
	if got := e.count(t, "SELECT COUNT(*) FROM consumed_messages WHERE msg_key IN (?, ?)",
		closed.ID, events.EventID(o.id, events.TagClosed)); got != 0 {
		t.Fatalf("dedup records after the failed transaction = %d, want 0", got)
	}
	if err := e.reserver.Handle(t.Context(), createdMsg(t, "c1", o)); err != nil {
		t.Fatalf("Handle(created) error = %v", err)
	}
	if err := e.reserver.Handle(t.Context(), closed); err != nil {
		t.Fatalf("Handle(closed, redelivered) error = %v", err)
	}
	if pr := e.dbProduct(t, p); pr.Sold != 0 {
		t.Errorf("sold = %d, want 0", pr.Sold)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 4 {
		t.Errorf("redis stock = %d, want 4", got)
	}
}

func TestSoldOutClearedWhenStockComesBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 1, 1)
	a, b := e.newOrder(t, p, "u1", 1), e.newOrder(t, p, "u2", 1)
	e.reserve(t, a) // takes the last unit: Redis stock 0
	for _, m := range []mq.Message{createdMsg(t, "ca", a), closedMsg(t, "xa", a)} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s) error = %v", m.ID, err)
		}
	}
	e.reserve(t, b) // the unit sells again, then comes back again
	for _, m := range []mq.Message{createdMsg(t, "cb", b), closedMsg(t, "xb", b), closedMsg(t, "xb", b)} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s) error = %v", m.ID, err)
		}
	}
	var got []bool
	for _, s := range sent[events.SoldOut](t, e.broker, events.TopicSoldOut) {
		if s.ProductID != p {
			t.Errorf("sold-out message for %q, want %q", s.ProductID, p)
		}
		got = append(got, s.SoldOut)
	}
	// The sale start, then one clear per return from 0 (none for the redelivery).
	if want := []bool{false, false, false}; !slices.Equal(got, want) {
		t.Errorf("sold-out messages = %v, want %v", got, want)
	}
}

func TestCreatedRefusedBeyondDBStock(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 1, 5)
	o := e.newOrder(t, p, "u1", 2) // Redis would never accept it; the DB is the last guard
	// Refused: a business outcome (the order is closed out_of_stock and its
	// payment cancelled or refunded), not a dead letter.
	if err := e.reserver.Handle(t.Context(), createdMsg(t, "c1", o)); err != nil {
		t.Fatalf("Handle(created beyond stock) error = %v, want nil", err)
	}
	e.relayed(t, 1)
	closed := sent[events.OrderClosed](t, e.broker, events.TopicOrder)
	if len(closed) != 1 || closed[0].OrderID != o.id || closed[0].Reason != events.ReasonOutOfStock || closed[0].UserID != "u1" {
		t.Errorf("events after the refusal = %+v, want one closed out_of_stock of %s", closed, o.id)
	}
	if pr := e.dbProduct(t, p); pr.Sold != 0 {
		t.Errorf("sold = %d, want 0", pr.Sold)
	}
	// Its close is a recognised no-op, not an endless retry.
	if err := e.reserver.Handle(t.Context(), closedMsg(t, "x1", o)); err != nil {
		t.Errorf("Handle(closed of a refused order) error = %v, want nil", err)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 1 {
		t.Errorf("redis stock = %d, want 1 (nothing given back)", got)
	}
	if n := len(e.broker.Messages(events.TopicStockLedger)); n != 0 {
		t.Errorf("ledger lines sent = %d, want 0", n)
	}
}

// Late events of an older sale never touch the new sale.
func TestSaleResetIgnoresOlderSale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 10, 5)
	deducted := e.newOrder(t, p, "u1", 2) // deducted in sale 1, closed in sale 2
	e.reserve(t, deducted)
	if err := e.reserver.Handle(t.Context(), createdMsg(t, "c1", deducted)); err != nil {
		t.Fatal(err)
	}
	late := e.newOrder(t, p, "u2", 3) // created in sale 1, consumed in sale 2
	late.createdAt = time.Now().UTC().Add(-time.Second)

	if _, err := e.sales.Put(t.Context(), p, stock.Sale{Name: "again", PriceCents: 100, Stock: 6, PerUserLimit: 5}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []mq.Message{createdMsg(t, "c2", late), closedMsg(t, "x1", deducted), closedMsg(t, "x2", late)} {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s %s) error = %v, want nil", m.Tag, m.ID, err)
		}
	}
	pr := e.dbProduct(t, p)
	if pr.SaleID != 2 || pr.Stock != 6 || pr.Sold != 0 {
		t.Errorf("product after reset and late events = sale %d stock %d sold %d, want 2, 6, 0", pr.SaleID, pr.Stock, pr.Sold)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != 6 {
		t.Errorf("redis stock = %d, want 6", got)
	}
}

func TestPoisonMessagesArePermanent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 3, 1)
	o := e.newOrder(t, p, "u1", 1)
	wrongVersion := createdMsg(t, "v", o)
	wrongVersion.Body = []byte(`{"version":99,"event_id":"x:created","order_id":"x","product_id":"` + p + `","quantity":1}`)
	tests := []struct {
		name string
		m    mq.Message
	}{
		{"bad JSON", mq.Message{ID: "j", Tag: events.TagCreated, Body: []byte("{")}},
		{"unknown tag", mq.Message{ID: "t", Tag: events.TagPaid, Body: []byte("{}")}},
		{"wrong version", wrongVersion},
		{"zero quantity", msg(t, "q", events.TagClosed, events.OrderClosed{Version: 1, EventID: "e", OrderID: "o", ProductID: p})},
		{"no order id", msg(t, "n", events.TagCreated, events.OrderCreated{Version: 1, EventID: "e", ProductID: p, Quantity: 1})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.reserver.Handle(t.Context(), tc.m); !errors.Is(err, mq.ErrPermanent) {
				t.Errorf("Handle(%s) error = %v, want mq.ErrPermanent", tc.name, err)
			}
		})
	}
	if pr := e.dbProduct(t, p); pr.Sold != 0 {
		t.Errorf("sold after poison messages = %d, want 0", pr.Sold)
	}
}

// Concurrent deductions beyond the stock: the database never oversells.
func TestConcurrentDeductionsNeverOversell(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const stockN, buyers = 30, 50
	p := e.product(t, stockN, 1)
	var wg sync.WaitGroup
	for i := range buyers {
		o := e.newOrder(t, p, fmt.Sprintf("u%d", i), 1)
		wg.Go(func() {
			if err := e.reserver.Handle(t.Context(), createdMsg(t, "m"+o.id, o)); err != nil {
				t.Errorf("Handle(created) error = %v, want nil", err)
			}
		})
	}
	wg.Wait()
	refused := e.count(t, "SELECT COUNT(*) FROM stock_movements WHERE product_id = ? AND note = ?", p, stock.NoteRefused)
	pr := e.dbProduct(t, p)
	if pr.Sold != stockN || refused != buyers-stockN {
		t.Errorf("after %d concurrent deductions on stock %d: sold %d, refused %d; want %d and %d",
			buyers, stockN, pr.Sold, refused, stockN, buyers-stockN)
	}
	if got := e.count(t, "SELECT COUNT(*) FROM stock_movements WHERE product_id = ? AND applied", p); got != stockN {
		t.Errorf("applied deductions = %d, want %d", got, stockN)
	}
}
