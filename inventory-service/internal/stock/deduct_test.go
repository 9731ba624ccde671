package stock_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"seckill/pkg/mq"
)

// outcome is what created events left: each order's deduct movement and the
// events the decisions wrote, by position, and the product's sold.
type outcome struct {
	Movements []string
	Events    []string
	Sold      int
}

func (e *env) outcome(t *testing.T, product string, orders []order) outcome {
	t.Helper()
	var out outcome
	pos := map[string]int{}
	for i, o := range orders {
		pos[o.id] = i
		var mv struct {
			Applied bool
			Note    string
			Qty     int
		}
		e.gdb.Raw("SELECT applied, note, quantity AS qty FROM stock_movements WHERE order_id = ? AND kind = 'deduct'", o.id).Scan(&mv)
		out.Movements = append(out.Movements, fmt.Sprintf("o%d %v %s %d", i, mv.Applied, mv.Note, mv.Qty))
	}
	var rows []struct {
		MsgKey, Tag string
	}
	e.gdb.Table("outbox_messages").Order("id").Find(&rows)
	for _, r := range rows {
		out.Events = append(out.Events, fmt.Sprintf("o%d %s", pos[r.MsgKey], r.Tag))
	}
	slices.Sort(out.Events)
	out.Sold = e.dbProduct(t, product).Sold
	return out
}

// A batch of created events is decided in order, exactly as one by one:
// deducted while the database has units, then refused (closed
// out_of_stock), with the same movements, events and stock; and a batch
// meeting an event consumed before fails whole, so pkg/mq hands each message
// to Handle, which ends in the same place.
func TestBatchMatchesSingles(t *testing.T) {
	t.Parallel()
	qty := []int{2, 1, 3, 1, 2, 1} // 10 units wanted of a stock of 6
	run := func(t *testing.T, batch bool, before int) outcome {
		e := newEnv(t)
		p := e.product(t, 6, 0)
		var orders []order
		var ms []mq.Message
		for i, q := range qty {
			o := e.newOrder(t, p, fmt.Sprintf("u%d", i), q)
			orders = append(orders, o)
			ms = append(ms, createdMsg(t, fmt.Sprintf("m%d", i), o))
		}
		for _, m := range ms[:before] {
			e.handle(t, m)
		}
		if batch {
			if err := e.reserver.HandleBatch(t.Context(), ms); err != nil {
				if before == 0 {
					t.Fatalf("HandleBatch() error = %v", err)
				}
				e.handle(t, ms...) // what pkg/mq does after a failed batch
			}
		} else {
			e.handle(t, ms...)
		}
		return e.outcome(t, p, orders)
	}
	want := run(t, false, 0)
	if want.Sold != 6 {
		t.Fatalf("one by one: sold %d, want 6 (%+v)", want.Sold, want)
	}
	for _, before := range []int{0, 2} {
		t.Run(fmt.Sprintf("%d handled alone first", before), func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(want, run(t, true, before)); diff != "" {
				t.Errorf("batch vs one by one (-singles +batch):\n%s", diff)
			}
		})
	}
}

// A batch costs a fixed number of statements plus one UPDATE per product,
// however many orders it holds (the service's session, one connection).
func TestBatchStatements(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sqlDB, err := e.gdb.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	p1, p2 := e.product(t, 100, 0), e.product(t, 100, 0)
	var ms []mq.Message
	for i := range 10 {
		p := p1
		if i%2 == 1 {
			p = p2
		}
		ms = append(ms, createdMsg(t, fmt.Sprintf("m%d", i), e.newOrder(t, p, fmt.Sprintf("u%d", i), 1)))
	}
	questions := func() int {
		var name string
		var n int
		if err := sqlDB.QueryRow("SHOW SESSION STATUS LIKE 'Questions'").Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := questions()
	if err := e.reserver.HandleBatch(t.Context(), ms); err != nil {
		t.Fatal(err)
	}
	// BEGIN, claims, lock products, movements, 2 UPDATEs, outbox, COMMIT, and
	// the SHOW above.
	got := questions() - before
	t.Logf("10 created events on 2 products: %d statements", got)
	if got > 9 {
		t.Errorf("statements of a batch of 10 = %d, want at most 9", got)
	}
}
