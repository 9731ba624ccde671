package stock_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"seckill/inventory-service/internal/stock"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testenv"
)

// spec is one order of a batch test: the index of its product in the world
// and its quantity.
type spec struct{ product, qty int }

// world is a batch test's orders on products of their own, so the batch path
// and the singles can take the same orders side by side.
type world struct {
	products []string
	orders   []order
	msgs     []mq.Message
}

func (e *env) newWorld(t *testing.T, products, stockN int, specs []spec) *world {
	t.Helper()
	w := &world{}
	for range products {
		w.products = append(w.products, e.product(t, stockN, 1000))
	}
	for i, s := range specs {
		w.orders = append(w.orders, e.newOrder(t, w.products[s.product], fmt.Sprintf("u%d", i%3), s.qty))
	}
	return w
}

// createdMsgs are first deliveries of the orders' created events.
func (w *world) createdMsgs(t *testing.T) []mq.Message {
	t.Helper()
	ms := make([]mq.Message, len(w.orders))
	for i, o := range w.orders {
		ms[i] = createdMsg(t, fmt.Sprintf("%s-m%d", w.products[0], i), o)
	}
	return ms
}

// placeholders names the world's IDs by position, so two worlds' states and
// log lines compare equal when they match order for order.
func (w *world) placeholders() map[string]string {
	names := map[string]string{}
	for i, p := range w.products {
		names[p] = fmt.Sprintf("P%d", i)
	}
	for i, o := range w.orders {
		if _, ok := names[o.product]; !ok {
			names[o.product] = fmt.Sprintf("P(order %d)", i)
		}
		names[o.id] = fmt.Sprintf("O%d", i)
		names[events.EventID(o.id, events.TagCreated)] = fmt.Sprintf("E%d", i)
		names[events.EventID(o.id, events.MovementDeduct)] = fmt.Sprintf("D%d", i)
	}
	for i, m := range w.msgs {
		if _, ok := names[m.ID]; !ok {
			names[m.ID] = fmt.Sprintf("M%d", i)
		}
	}
	return names
}

// outcome is what a world's messages left, IDs and times aside.
type outcome struct {
	Products  []string // per product: sold, sale
	Movements []string // per order: its deduct movement or "none"
	Claims    int      // inventory.reserve dedup records of the messages and events
	Sent      []string // ledger lines sent
	Ledger    []string // stock_ledger rows
}

func (e *env) outcome(t *testing.T, w *world) outcome {
	t.Helper()
	ctx := t.Context()
	names := w.placeholders()
	var out outcome
	for _, p := range w.products {
		pr := e.dbProduct(t, p)
		out.Products = append(out.Products, fmt.Sprintf("sold %d sale %d", pr.Sold, pr.SaleID))
	}
	var keys []string
	for _, o := range w.orders {
		keys = append(keys, events.EventID(o.id, events.TagCreated))
		mv, err := e.store.Movement(ctx, o.id, events.MovementDeduct)
		switch {
		case errors.Is(err, gorm.ErrRecordNotFound):
			out.Movements = append(out.Movements, "none")
		case err != nil:
			t.Fatal(err)
		default:
			out.Movements = append(out.Movements, fmt.Sprintf("%s %s qty %d user %s sale %d applied %t note %q",
				names[mv.ProductID], mv.Kind, mv.Quantity, mv.UserID, mv.SaleID, mv.Applied, mv.Note))
		}
	}
	for _, m := range w.msgs {
		keys = append(keys, m.ID)
	}
	out.Claims = e.count(t, "SELECT COUNT(*) FROM consumed_messages WHERE consumer = ? AND msg_key IN ?", stock.ConsumerReserve, keys)
	for _, l := range sent[events.StockMovement](t, e.broker, events.TopicStockLedger) {
		if name, ok := names[l.OrderID]; ok {
			out.Sent = append(out.Sent, fmt.Sprintf("%s %s %s %d sale %d", name, names[l.EventID], l.Kind, l.Delta, l.SaleID))
		}
	}
	slices.Sort(out.Sent)
	var rows []stock.LedgerEntry
	ids := make([]string, len(w.orders))
	for i, o := range w.orders {
		ids[i] = o.id
	}
	if err := e.gdb.WithContext(ctx).Where("order_id IN ?", ids).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		out.Ledger = append(out.Ledger, fmt.Sprintf("%s %s %d sale %d", names[r.OrderID], r.Kind, r.Delta, r.SaleID))
	}
	slices.Sort(out.Ledger)
	return out
}

// appendLedger hands the world's ledger lines (every copy sent) to the ledger
// consumer, as the orderly group would.
func (e *env) appendLedger(t *testing.T, w *world) {
	t.Helper()
	names := w.placeholders()
	for _, bm := range e.broker.Messages(events.TopicStockLedger) {
		var l events.StockMovement
		if err := json.Unmarshal(bm.Body, &l); err != nil {
			t.Fatal(err)
		}
		if _, ok := names[l.OrderID]; !ok {
			continue
		}
		m := mq.Message{ID: bm.MsgID, Topic: bm.Topic, Tag: bm.Tags, Keys: bm.Keys, Body: bm.Body}
		if err := e.ledger.Handle(t.Context(), m); err != nil {
			t.Fatalf("ledger Handle(%s) error = %v", m.ID, err)
		}
	}
}

// reserveCounters are the stock metrics a created event moves.
func (e *env) reserveCounters(t *testing.T) map[string]float64 {
	t.Helper()
	c := map[string]float64{
		"deductions": testenv.Counter(t, e.reg, "inventory_deductions_total", nil),
		"duplicates": testenv.Counter(t, e.reg, "inventory_duplicates_total", map[string]string{"handler": stock.ConsumerReserve}),
	}
	for _, r := range []string{stock.NoteRefused, stock.NoteStaleSale, stock.NoteUnknownProduct} {
		c["skipped "+r] = testenv.Counter(t, e.reg, "inventory_skipped_events_total", map[string]string{"reason": r})
	}
	return c
}

func since(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		d[k] = v - before[k]
	}
	return d
}

// logLines decodes a reserver's JSON log with the world's IDs replaced by
// placeholders and the time left out.
func logLines(t *testing.T, buf *bytes.Buffer, w *world) []map[string]any {
	t.Helper()
	names := w.placeholders()
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %s: %v", sc.Text(), err)
		}
		delete(l, "time")
		for k, v := range l {
			if s, ok := v.(string); ok {
				if name, ok := names[s]; ok {
					l[k] = name
				}
			}
		}
		lines = append(lines, l)
	}
	return lines
}

func errClass(err error) string {
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, stock.ErrRefused):
		return "refused"
	case errors.Is(err, stock.ErrUnknownProduct):
		return "unknown product"
	case errors.Is(err, stock.ErrNotDeducted):
		return "not deducted"
	case errors.Is(err, mq.ErrPermanent):
		return "permanent"
	}
	return "error: " + err.Error()
}

// TestBatchMatchesSingles runs the same created events through HandleBatch
// (and, when it declines or fails, Handle one by one, as pkg/mq does) and
// through Handle alone, on twin products, and compares everything they left:
// rows, dedup records, ledger lines and the ledger, metrics, log lines and
// each message's outcome.
func TestBatchMatchesSingles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tests := []struct {
		name            string
		products, stock int
		orders          []spec
		// prepare runs in each world before its messages are built.
		prepare func(t *testing.T, w *world)
		// edit changes the messages built from the orders.
		edit    func(t *testing.T, w *world)
		wantErr error // HandleBatch's: nil, mq.ErrNoBatch or dedup.ErrSeen
	}{
		{
			name: "one product", products: 1, stock: 40,
			orders: []spec{{0, 1}, {0, 2}, {0, 3}, {0, 4}, {0, 5}, {0, 6}, {0, 7}, {0, 8}},
		},
		{
			name: "three products down to their last unit", products: 3, stock: 6,
			orders: []spec{{0, 2}, {1, 3}, {2, 6}, {0, 4}, {1, 3}},
		},
		{
			name: "an event consumed before under another message ID", products: 1, stock: 10,
			orders: []spec{{0, 1}, {0, 2}, {0, 3}},
			prepare: func(t *testing.T, w *world) {
				if err := e.reserver.Handle(t.Context(), createdMsg(t, w.products[0]+"-early", w.orders[1])); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: dedup.ErrSeen,
		},
		{
			name: "one message twice in the batch", products: 1, stock: 10,
			orders:  []spec{{0, 1}, {0, 2}},
			edit:    func(t *testing.T, w *world) { w.msgs = append(w.msgs, w.msgs[1]) },
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "one event under two message IDs in the batch", products: 1, stock: 10,
			orders: []spec{{0, 1}, {0, 2}},
			edit: func(t *testing.T, w *world) {
				again := w.msgs[0]
				again.ID += "-resent"
				w.msgs = append(w.msgs, again)
			},
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "more than the database stock", products: 2, stock: 5,
			orders:  []spec{{0, 2}, {1, 1}, {0, 4}},
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "an order of an older sale", products: 1, stock: 10,
			orders: []spec{{0, 1}, {0, 2}, {0, 3}},
			prepare: func(t *testing.T, w *world) {
				w.orders[1].createdAt = w.orders[1].createdAt.Add(-time.Hour)
			},
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "an unknown product", products: 1, stock: 10,
			orders: []spec{{0, 1}, {0, 2}},
			prepare: func(t *testing.T, w *world) {
				w.orders[1].product = testenv.Unique(t, "nop")
			},
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "a closed event", products: 1, stock: 10,
			orders:  []spec{{0, 1}, {0, 2}},
			edit:    func(t *testing.T, w *world) { w.msgs[1] = closedMsg(t, w.msgs[1].ID, w.orders[1]) },
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "a redelivery", products: 1, stock: 10,
			orders:  []spec{{0, 1}, {0, 2}},
			edit:    func(t *testing.T, w *world) { w.msgs[1].ReconsumeTimes = 1 },
			wantErr: mq.ErrNoBatch,
		},
		{
			name: "a malformed event", products: 1, stock: 10,
			orders:  []spec{{0, 1}, {0, 2}},
			edit:    func(t *testing.T, w *world) { w.msgs[1].Body = []byte(`{"version":1,"order_id":`) },
			wantErr: mq.ErrNoBatch,
		},
	}
	// One after the other: the worlds share the env's metrics.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var worlds [2]*world
			for i := range worlds {
				w := e.newWorld(t, tc.products, tc.stock, tc.orders)
				if tc.prepare != nil {
					tc.prepare(t, w)
				}
				w.msgs = w.createdMsgs(t)
				if tc.edit != nil {
					tc.edit(t, w)
				}
				worlds[i] = w
			}
			alone, batched := worlds[0], worlds[1]

			var aloneLog, batchLog bytes.Buffer
			ra := stock.NewReserver(e.store, e.rdb, e.producer, e.metrics, slog.New(slog.NewJSONHandler(&aloneLog, nil)))
			rb := stock.NewReserver(e.store, e.rdb, e.producer, e.metrics, slog.New(slog.NewJSONHandler(&batchLog, nil)))

			before := e.reserveCounters(t)
			var aloneErrs []string
			for _, m := range alone.msgs {
				aloneErrs = append(aloneErrs, errClass(ra.Handle(t.Context(), m)))
			}
			aloneCounts := since(before, e.reserveCounters(t))

			before = e.reserveCounters(t)
			untouched := e.outcome(t, batched)
			err := rb.HandleBatch(t.Context(), batched.msgs)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("HandleBatch(%d messages) error = %v, want %v", len(batched.msgs), err, tc.wantErr)
			}
			var batchErrs []string
			if err != nil {
				// What pkg/mq does next; the failed batch must have left nothing.
				if got := e.outcome(t, batched); !reflect.DeepEqual(got, untouched) {
					t.Errorf("state after HandleBatch error = %+v, want untouched %+v", got, untouched)
				}
				if got := e.reserveCounters(t); !reflect.DeepEqual(got, before) {
					t.Errorf("counters after HandleBatch error = %v, want unchanged %v", got, before)
				}
				for _, m := range batched.msgs {
					batchErrs = append(batchErrs, errClass(rb.Handle(t.Context(), m)))
				}
			} else {
				for range batched.msgs {
					batchErrs = append(batchErrs, errClass(nil))
				}
			}
			batchCounts := since(before, e.reserveCounters(t))

			if !slices.Equal(batchErrs, aloneErrs) {
				t.Errorf("messages' results with the batch = %v, want %v (alone)", batchErrs, aloneErrs)
			}
			if !reflect.DeepEqual(batchCounts, aloneCounts) {
				t.Errorf("counters moved with the batch by %v, want %v (alone)", batchCounts, aloneCounts)
			}
			if got, want := logLines(t, &batchLog, batched), logLines(t, &aloneLog, alone); !reflect.DeepEqual(got, want) {
				t.Errorf("log lines with the batch =\n%v\nwant (alone)\n%v", got, want)
			}
			e.appendLedger(t, alone)
			e.appendLedger(t, batched)
			got, want := e.outcome(t, batched), e.outcome(t, alone)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("state with the batch =\n%+v\nwant (alone)\n%+v", got, want)
			}
			for _, l := range got.Sent {
				if !strings.HasSuffix(l, " sale 1") {
					t.Errorf("ledger line sent %q, want it to carry sale 1", l)
				}
			}
		})
	}
}

// A ledger send failing after the batch committed: HandleBatch reports it,
// and each message alone finds its event consumed and sends its line again.
func TestBatchLedgerSendFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := e.newWorld(t, 2, 10, []spec{{0, 1}, {1, 2}, {0, 3}})
	w.msgs = w.createdMsgs(t)
	before := e.reserveCounters(t)

	e.broker.RefuseSends(true)
	err := e.reserver.HandleBatch(t.Context(), w.msgs)
	e.broker.RefuseSends(false)
	if err == nil || errors.Is(err, mq.ErrNoBatch) {
		t.Fatalf("HandleBatch with the broker refusing sends: error = %v, want a send error", err)
	}
	if n := len(e.outcome(t, w).Sent); n != 0 {
		t.Fatalf("ledger lines sent while refused = %d, want 0", n)
	}
	for _, m := range w.msgs {
		if err := e.reserver.Handle(t.Context(), m); err != nil {
			t.Fatalf("Handle(%s) after the failed send error = %v, want nil", m.ID, err)
		}
	}
	counts := since(before, e.reserveCounters(t))
	if counts["deductions"] != 3 || counts["duplicates"] != 3 {
		t.Errorf("deductions %v, duplicates %v; want 3 (batch) and 3 (the messages alone)", counts["deductions"], counts["duplicates"])
	}
	e.appendLedger(t, w)
	got := e.outcome(t, w)
	want := outcome{
		Products: []string{"sold 4 sale 1", "sold 2 sale 1"},
		Movements: []string{
			`P0 deduct qty 1 user u0 sale 1 applied true note ""`,
			`P1 deduct qty 2 user u1 sale 1 applied true note ""`,
			`P0 deduct qty 3 user u2 sale 1 applied true note ""`,
		},
		Claims: 6,
		Sent:   []string{"O0 D0 deduct -1 sale 1", "O1 D1 deduct -2 sale 1", "O2 D2 deduct -3 sale 1"},
		Ledger: []string{"O0 deduct -1 sale 1", "O1 deduct -2 sale 1", "O2 deduct -3 sale 1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after the failed send and the messages alone:\n%+v\nwant\n%+v", got, want)
	}
}

// Through the broker, with the batch handler set as inventory-service sets
// it: created events that pass the throttle together are deducted as
// batches, and every order ends deducted once with one ledger line.
func TestBatchThroughBroker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const perProduct = 30
	var specs []spec
	for i := range 2 * perProduct {
		specs = append(specs, spec{i % 2, 1 + i%2})
	}
	w := e.newWorld(t, 2, 100, specs)
	var (
		mu      sync.Mutex
		batched int
	)
	batch := func(ctx context.Context, ms []mq.Message) error {
		err := e.reserver.HandleBatch(ctx, ms)
		if err == nil {
			mu.Lock()
			batched += len(ms)
			mu.Unlock()
		}
		return err
	}
	c, err := mq.Subscribe(t.Context(), e.mqCfg, mq.Subscription{
		Group: testenv.Unique(t, "GID-inv"), Topics: []mq.TopicTag{{Topic: events.TopicOrder, Tag: "created || closed"}},
		Rate: 200, InstanceName: testenv.Unique(t, "i"), Batch: batch,
	}, e.reserver.Handle, e.log, e.mqm)
	if err != nil {
		t.Fatalf("Subscribe error = %v", err)
	}
	t.Cleanup(func() { c.Close() })

	var out []mq.Outgoing
	for _, m := range w.createdMsgs(t) {
		var ev events.OrderCreated
		if err := json.Unmarshal(m.Body, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, mq.Outgoing{Topic: events.TopicOrder, Tag: events.TagCreated, Keys: []string{ev.OrderID}, ShardingKey: ev.OrderID, Body: m.Body})
	}
	if err := e.producer.SendBatch(t.Context(), out); err != nil {
		t.Fatalf("SendBatch error = %v", err)
	}
	eventually(t, "every order deducted", func() (bool, string) {
		n := e.count(t, "SELECT COUNT(*) FROM stock_movements WHERE product_id IN ? AND applied", w.products)
		return n == len(w.orders), fmt.Sprintf("%d of %d deducted", n, len(w.orders))
	})
	eventually(t, "every ledger line sent", func() (bool, string) {
		n := len(e.outcome(t, w).Sent)
		return n >= len(w.orders), fmt.Sprintf("%d of %d lines", n, len(w.orders))
	})
	e.appendLedger(t, w)
	got := e.outcome(t, w)
	if want := []string{fmt.Sprintf("sold %d sale 1", perProduct), fmt.Sprintf("sold %d sale 1", 2*perProduct)}; !slices.Equal(got.Products, want) {
		t.Errorf("products = %v, want %v", got.Products, want)
	}
	if len(got.Ledger) != len(w.orders) {
		t.Errorf("ledger rows = %d, want %d", len(got.Ledger), len(w.orders))
	}
	for _, p := range w.products {
		pr := e.dbProduct(t, p)
		if sum, n, err := e.store.LedgerSum(t.Context(), p, pr.SaleID); err != nil || sum != -pr.Sold || n != perProduct {
			t.Errorf("LedgerSum(%s, %d) = %d, %d, %v; want %d, %d", p, pr.SaleID, sum, n, err, -pr.Sold, perProduct)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d of %d created events deducted in batches", batched, len(w.orders))
	if batched == 0 {
		t.Errorf("no created event was deducted in a batch")
	}
}

// TestBatchStatements counts the statements the service's session sends to
// MariaDB (its Questions counter, on a pool of one connection): a batch
// costs a fixed number of statements plus one UPDATE per product, however
// many orders it holds, and a ledger line that carries its sale one fewer
// than an old one.
func TestBatchStatements(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sqlDB, err := e.gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1) // every statement on one session, whose counter is read
	questions := func() int {
		t.Helper()
		var name string
		var n int
		if err := e.gdb.Raw("SHOW SESSION STATUS LIKE 'Questions'").Row().Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	overhead := -questions() + questions() // the SHOW itself
	count := func(f func()) int {
		t.Helper()
		before := questions()
		f()
		return questions() - before - overhead
	}

	const products, orders = 2, 10
	var specs []spec
	for i := range orders {
		specs = append(specs, spec{i % products, 1})
	}
	alone, batched := e.newWorld(t, products, 100, specs), e.newWorld(t, products, 100, specs)
	alone.msgs, batched.msgs = alone.createdMsgs(t), batched.createdMsgs(t)

	singles := count(func() {
		for _, m := range alone.msgs {
			if err := e.reserver.Handle(t.Context(), m); err != nil {
				t.Fatal(err)
			}
		}
	})
	batch := count(func() {
		if err := e.reserver.HandleBatch(t.Context(), batched.msgs); err != nil {
			t.Fatalf("HandleBatch error = %v", err)
		}
	})
	// BEGIN, lock the products, claim, insert the movements, COMMIT; and
	// an UPDATE per product.
	if want := 5 + products; batch != want {
		t.Errorf("statements of a batch of %d orders on %d products = %d, want %d", orders, products, batch, want)
	}

	var lines []mq.Message
	for _, bm := range e.broker.Messages(events.TopicStockLedger) {
		lines = append(lines, mq.Message{ID: bm.MsgID, Topic: bm.Topic, Tag: bm.Tags, Body: bm.Body})
	}
	if len(lines) != 2*orders {
		t.Fatalf("ledger lines sent = %d, want %d", len(lines), 2*orders)
	}
	ledger := count(func() {
		if err := e.ledger.Handle(t.Context(), lines[0]); err != nil {
			t.Fatal(err)
		}
	})
	old := lines[1]
	var ev map[string]any
	if err := json.Unmarshal(old.Body, &ev); err != nil {
		t.Fatal(err)
	}
	delete(ev, "sale_id")
	if old.Body, err = json.Marshal(ev); err != nil {
		t.Fatal(err)
	}
	oldLedger := count(func() {
		if err := e.ledger.Handle(t.Context(), old); err != nil {
			t.Fatal(err)
		}
	})
	// One INSERT (the unique event_id is its duplicate guard); an old line
	// also reads its sale.
	if ledger != 1 || oldLedger != 2 {
		t.Errorf("statements of a ledger line = %d with its sale, %d without; want 1 and 2", ledger, oldLedger)
	}
	t.Logf("statements for %d created events on %d products: %d one by one (each alone in its transaction), %d as one batch; ledger line: %d, old line: %d",
		orders, products, singles, batch, ledger, oldLedger)
}
