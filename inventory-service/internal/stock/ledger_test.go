package stock_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

// TestLedgerMatchesSold drives deductions and releases through the broker
// with every message stored twice, and checks the orderly ledger: one line per
// movement, in order per order, summing to -sold.
func TestLedgerMatchesSold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 50, 3)
	e.broker.DuplicateDelivery(2)
	e.startRelay(t)

	subscribe := func(group, topic, tag string, orderly bool, h mq.Handler) {
		t.Helper()
		c, err := mq.Subscribe(t.Context(), e.mqCfg, mq.Subscription{
			Group: group, Topics: []mq.TopicTag{{Topic: topic, Tag: tag}}, Orderly: orderly,
			InstanceName: testenv.Unique(t, "i"),
		}, h, e.log, e.mqm)
		if err != nil {
			t.Fatalf("Subscribe(%s) error = %v", group, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	subscribe(testenv.Unique(t, "GID-inv"), events.TopicOrder, "created || closed", false, e.reserver.Handle)
	if !raceEnabled {
		subscribe(testenv.Unique(t, "GID-ledger"), events.TopicStockLedger, "*", true, e.ledger.Handle)
	}

	send := func(tag string, body any, orderID string) {
		t.Helper()
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.producer.SendSync(t.Context(), mq.Outgoing{
			Topic: events.TopicOrder, Tag: tag, Keys: []string{orderID}, ShardingKey: orderID, Body: b,
		})
		if err != nil {
			t.Fatalf("SendSync(%s %s) error = %v", tag, orderID, err)
		}
	}
	sold := func(want int) func() (bool, string) {
		return func() (bool, string) {
			got := e.dbProduct(t, p).Sold
			return got == want, fmt.Sprintf("sold %d, want %d", got, want)
		}
	}

	var orders []order
	total := 0
	for i := range 20 {
		o := e.newOrder(t, p, fmt.Sprintf("u%d", i), 1+i%3)
		e.reserve(t, o)
		orders = append(orders, o)
		total += o.qty
		m := createdMsg(t, "", o)
		send(events.TagCreated, json.RawMessage(m.Body), o.id)
	}
	eventually(t, "every order deducted", sold(total))

	closed := orders[:7]
	for _, o := range closed {
		total -= o.qty
		m := closedMsg(t, "", o)
		send(events.TagClosed, json.RawMessage(m.Body), o.id)
	}
	eventually(t, "closed orders released", sold(total))

	lines := len(orders) + len(closed)
	if raceEnabled {
		// What an orderly consumer of the one-queue topic does: every stored
		// message, duplicates included, in queue order, one at a time.
		eventually(t, "every ledger line sent", func() (bool, string) {
			ids := map[string]bool{}
			for _, l := range sent[events.StockMovement](t, e.broker, events.TopicStockLedger) {
				ids[l.EventID] = true
			}
			return len(ids) == lines, fmt.Sprintf("%d distinct lines, want %d", len(ids), lines)
		})
		for _, bm := range e.broker.Messages(events.TopicStockLedger) {
			m := mq.Message{ID: bm.MsgID, Topic: bm.Topic, Tag: bm.Tags, Keys: bm.Keys, Body: bm.Body}
			if err := e.ledger.Handle(t.Context(), m); err != nil {
				t.Fatalf("ledger Handle(%s) error = %v", m.ID, err)
			}
		}
	}
	eventually(t, "every movement in the ledger", func() (bool, string) {
		n := e.count(t, "SELECT COUNT(*) FROM stock_ledger WHERE product_id = ?", p)
		return n >= lines, fmt.Sprintf("%d lines, want %d", n, lines)
	})
	pr := e.dbProduct(t, p)
	sum, n, err := e.store.LedgerSum(t.Context(), p, pr.SaleID)
	if err != nil {
		t.Fatal(err)
	}
	if n != lines || sum != -pr.Sold {
		t.Errorf("ledger of %s sale %d: %d lines summing to %d, want %d lines summing to -sold = %d", p, pr.SaleID, n, sum, lines, -pr.Sold)
	}
	if got := e.redisInt(t, events.StockKey(p)); got != pr.Available() {
		t.Errorf("redis stock %d, DB available %d: want equal", got, pr.Available())
	}
	// Global order: each closed order's release comes after its deduction.
	for _, o := range closed {
		var seqs []int64
		err := e.gdb.Raw("SELECT seq FROM stock_ledger WHERE order_id = ? ORDER BY kind", o.id).Scan(&seqs).Error
		if err != nil {
			t.Fatal(err)
		}
		if len(seqs) != 2 || seqs[0] > seqs[1] { // "deduct" < "release"
			t.Errorf("ledger seqs of %s (deduct, release) = %v, want deduct first", o.id, seqs)
		}
	}
}

func TestLedgerRedeliveryAndPoison(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	line := events.StockMovement{
		Version: events.Version, EventID: "o1:deduct", OrderID: "o1", ProductID: "p1",
		Kind: events.MovementDeduct, Delta: -2,
	}
	b, err := json.Marshal(line)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m1", "m2"} {
		m := mq.Message{ID: id, Topic: events.TopicStockLedger, Tag: events.TagMovement, Body: b}
		if err := e.ledger.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s) error = %v", id, err)
		}
	}
	if got := e.count(t, "SELECT COUNT(*) FROM stock_ledger WHERE event_id = ?", line.EventID); got != 1 {
		t.Errorf("ledger lines for %s = %d, want 1", line.EventID, got)
	}
	bad := map[string]string{
		"bad JSON":      `{`,
		"wrong sign":    `{"version":1,"event_id":"o2:deduct","order_id":"o2","product_id":"p1","kind":"deduct","delta":2}`,
		"unknown kind":  `{"version":1,"event_id":"o2:x","order_id":"o2","product_id":"p1","kind":"x","delta":-1}`,
		"old version":   `{"version":0,"event_id":"o2:deduct","order_id":"o2","product_id":"p1","kind":"deduct","delta":-1}`,
		"negative sale": `{"version":1,"event_id":"o2:deduct","order_id":"o2","product_id":"p1","kind":"deduct","delta":-1,"sale_id":-1}`,
	}
	for name, body := range bad {
		m := mq.Message{ID: name, Topic: events.TopicStockLedger, Tag: events.TagMovement, Body: []byte(body)}
		if err := e.ledger.Handle(t.Context(), m); !errors.Is(err, mq.ErrPermanent) {
			t.Errorf("Handle(%s) error = %v, want mq.ErrPermanent", name, err)
		}
	}
}

// A ledger line carries its sale; an old line without one takes the sale of
// the movement it reports (0 when there is none).
func TestAppendLedgerSaleID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 10, 5)
	var orders []order
	for i := range 2 {
		o := e.newOrder(t, p, "u1", 2)
		if err := e.reserver.Handle(t.Context(), createdMsg(t, fmt.Sprintf("c%d", i), o)); err != nil {
			t.Fatal(err)
		}
		orders = append(orders, o)
	}
	for _, l := range sent[events.StockMovement](t, e.broker, events.TopicStockLedger) {
		if l.SaleID != 1 {
			t.Errorf("ledger line %s sale_id = %d, want 1", l.EventID, l.SaleID)
		}
	}
	tests := []struct {
		name     string
		order    string
		body     string
		wantSale int64
	}{
		// The line's sale is taken as it is: the movement's (1) is not read.
		{"line with its sale", orders[0].id,
			`{"version":1,"event_id":"%[1]s:deduct","order_id":"%[1]s","product_id":"p","kind":"deduct","delta":-2,"sale_id":7}`, 7},
		{"line sent before sale_id existed", orders[1].id,
			`{"version":1,"event_id":"%[1]s:deduct","order_id":"%[1]s","product_id":"p","kind":"deduct","delta":-2}`, 1},
		{"old line of a movement not in this database", "gone",
			`{"version":1,"event_id":"%[1]s:deduct","order_id":"%[1]s","product_id":"p","kind":"deduct","delta":-1}`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := mq.Message{ID: "l-" + tc.order, Topic: events.TopicStockLedger, Tag: events.TagMovement,
				Body: fmt.Appendf(nil, tc.body, tc.order)}
			if err := e.ledger.Handle(t.Context(), m); err != nil {
				t.Fatalf("ledger Handle(%s) error = %v", tc.name, err)
			}
			var stored []int64
			err := e.gdb.Raw("SELECT sale_id FROM stock_ledger WHERE order_id = ?", tc.order).Scan(&stored).Error
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stored, []int64{tc.wantSale}) {
				t.Errorf("ledger rows' sale of %s = %v, want [%d]", tc.name, stored, tc.wantSale)
			}
		})
	}
}
