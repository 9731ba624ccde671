package stock_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/testenv"
)

// sale puts a product into Redis the way inventory-service warms it, and
// removes its keys when the test ends.
func sale(t *testing.T, rdb *redis.Client, stockUnits, price, limit int) string {
	t.Helper()
	p := testenv.Unique(t, "p")
	ctx := t.Context()
	if err := rdb.Set(ctx, events.StockKey(p), stockUnits, time.Hour).Err(); err != nil {
		t.Fatalf("set stock: %v", err)
	}
	if err := rdb.HSet(ctx, events.InfoKey(p), "price", price, "limit", limit).Err(); err != nil {
		t.Fatalf("set info: %v", err)
	}
	t.Cleanup(func() {
		rdb.Del(context.Background(), events.StockKey(p), events.InfoKey(p), events.UsersKey(p))
	})
	return p
}

func stockOf(t *testing.T, rdb *redis.Client, p string) int {
	t.Helper()
	n, err := rdb.Get(t.Context(), events.StockKey(p)).Int()
	if err != nil {
		t.Fatalf("get stock of %s: %v", p, err)
	}
	return n
}

var seq atomic.Int64

func req(p, user string, qty int) stock.Request {
	return stock.Request{
		OrderID: fmt.Sprintf("o-%d-%d", time.Now().UnixNano(), seq.Add(1)), UserID: user,
		ProductID: p, Quantity: qty, Now: time.Now(),
	}
}

func newReserver(t *testing.T, rdb *redis.Client) (*stock.Reserver, string) {
	r, stream, _ := newReserverLoaded(t, rdb)
	return r, stream
}

// newReserverLoaded is newReserver with a loaded marker of the test's own,
// set as inventory-service sets events.LoadedKey; it returns its key too.
func newReserverLoaded(t *testing.T, rdb *redis.Client) (r *stock.Reserver, stream, loaded string) {
	t.Helper()
	stream, loaded = testenv.Unique(t, "outbox"), testenv.Unique(t, "loaded")
	if err := rdb.Set(t.Context(), loaded, testenv.RunID(t, rdb), time.Hour).Err(); err != nil {
		t.Fatalf("set loaded marker: %v", err)
	}
	t.Cleanup(func() { rdb.Del(context.Background(), stream, loaded) })
	return stock.NewReserver(rdb, stock.Options{Stream: stream, TTL: time.Minute, Loaded: loaded}), stream, loaded
}

func TestReserve(t *testing.T) {
	rdb := testenv.Redis(t)
	tests := []struct {
		name                    string
		stock, limit, qty, left int
		wantErr                 error
	}{
		{"enough stock", 5, 0, 2, 3, nil},
		{"takes the last unit", 1, 0, 1, 0, nil},
		{"sold out leaves stock untouched", 1, 0, 2, 1, stock.ErrSoldOut},
		{"zero stock", 0, 0, 1, 0, stock.ErrSoldOut},
		{"over the per-user limit", 5, 1, 2, 5, stock.ErrLimitExceeded},
		{"at the per-user limit", 5, 2, 2, 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := sale(t, rdb, tc.stock, 999, tc.limit)
			r, _ := newReserver(t, rdb)
			got, err := r.Reserve(t.Context(), req(p, "u1", tc.qty))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Reserve(%q, %d) error = %v, want %v", p, tc.qty, err, tc.wantErr)
			}
			if left := stockOf(t, rdb, p); left != tc.left {
				t.Errorf("stock after Reserve(%q, %d) = %d, want %d", p, tc.qty, left, tc.left)
			}
			if err == nil {
				if got.AmountCents != int64(999*tc.qty) || got.Remaining != int64(tc.left) {
					t.Errorf("Reserve(%q, %d) = amount %d remaining %d, want %d %d", p, tc.qty, got.AmountCents, got.Remaining, 999*tc.qty, tc.left)
				}
				pending, err := r.Pending(t.Context(), got.OrderID)
				if err != nil {
					t.Fatalf("Pending(%s) error = %v", got.OrderID, err)
				}
				if pending.UserID != "u1" || pending.ProductID != p || pending.Quantity != tc.qty || pending.AmountCents != got.AmountCents {
					t.Errorf("Pending(%s) = %+v, want user u1 product %s qty %d", got.OrderID, pending, p, tc.qty)
				}
			}
		})
	}
}

// While Redis misses a product's stock (restarted empty, stock being
// rebuilt by inventory-service) the script refuses with ErrNotLoaded and
// writes nothing; only with the loaded marker set is a product without info
// unknown.
func TestReserveNotLoaded(t *testing.T) {
	rdb := testenv.Redis(t)
	tests := []struct {
		name                      string
		dropStock, dropInfo, lost bool
		wantErr                   error
	}{
		{"stock being rebuilt", true, false, false, stock.ErrNotLoaded},
		{"redis lost everything", true, true, true, stock.ErrNotLoaded},
		{"unknown product", true, true, false, stock.ErrUnknownProduct},
		{"restarted, not checked yet (marker gone)", false, false, true, stock.ErrNotLoaded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := sale(t, rdb, 5, 100, 0)
			r, stream, loaded := newReserverLoaded(t, rdb)
			ctx := t.Context()
			if tc.dropStock {
				rdb.Del(ctx, events.StockKey(p))
			}
			if tc.dropInfo {
				rdb.Del(ctx, events.InfoKey(p))
			}
			if tc.lost {
				rdb.Del(ctx, loaded)
			}
			o := req(p, "u1", 1)
			o.IdempotencyKey = testenv.Unique(t, "k")
			t.Cleanup(func() { rdb.Del(context.Background(), events.IdempotencyKey("u1", o.IdempotencyKey)) })
			if _, err := r.Reserve(ctx, o); !errors.Is(err, tc.wantErr) {
				t.Fatalf("Reserve(%s) error = %v, want %v", tc.name, err, tc.wantErr)
			}
			n, err := rdb.Exists(ctx, events.UsersKey(p), events.OrderKey(o.OrderID),
				events.IdempotencyKey("u1", o.IdempotencyKey), stream).Result()
			if err != nil || n != 0 {
				t.Errorf("keys written by a refused Reserve = %d (%v), want 0", n, err)
			}
			if tc.dropStock {
				if rdb.Exists(ctx, events.StockKey(p)).Val() != 0 {
					t.Errorf("stock key written by a refused Reserve")
				}
			} else if left := stockOf(t, rdb, p); left != 5 {
				t.Errorf("stock after a refused Reserve = %d, want 5", left)
			}
		})
	}
}

func TestReservePerUserLimitAcrossOrders(t *testing.T) {
	rdb := testenv.Redis(t)
	p := sale(t, rdb, 10, 100, 2)
	r, _ := newReserver(t, rdb)
	for i, want := range []error{nil, nil, stock.ErrLimitExceeded} {
		if _, err := r.Reserve(t.Context(), req(p, "u1", 1)); !errors.Is(err, want) {
			t.Fatalf("Reserve #%d error = %v, want %v", i+1, err, want)
		}
	}
	if _, err := r.Reserve(t.Context(), req(p, "u2", 1)); err != nil {
		t.Fatalf("Reserve by another user error = %v, want nil", err)
	}
	if left := stockOf(t, rdb, p); left != 7 {
		t.Errorf("stock = %d, want 7", left)
	}
}

func TestReserveIdempotencyKey(t *testing.T) {
	rdb := testenv.Redis(t)
	p := sale(t, rdb, 10, 100, 0)
	r, stream := newReserver(t, rdb)
	key := testenv.Unique(t, "idem")
	t.Cleanup(func() { rdb.Del(context.Background(), events.IdempotencyKey("u1", key)) })
	first := req(p, "u1", 2)
	first.IdempotencyKey = key
	a, err := r.Reserve(t.Context(), first)
	if err != nil {
		t.Fatalf("first Reserve error = %v", err)
	}
	again := req(p, "u1", 2) // a new order ID, as a retried HTTP request would get
	again.IdempotencyKey = key
	b, err := r.Reserve(t.Context(), again)
	if err != nil {
		t.Fatalf("second Reserve error = %v", err)
	}
	if b.OrderID != a.OrderID || !b.Replayed {
		t.Errorf("second Reserve = order %s replayed %v, want order %s replayed true", b.OrderID, b.Replayed, a.OrderID)
	}
	if left := stockOf(t, rdb, p); left != 8 {
		t.Errorf("stock after two requests with one key = %d, want 8", left)
	}
	if n := rdb.XLen(t.Context(), stream).Val(); n != 1 {
		t.Errorf("outbox entries = %d, want 1", n)
	}
	// Another user with the same key is a different order.
	other := req(p, "u2", 1)
	other.IdempotencyKey = key
	t.Cleanup(func() { rdb.Del(context.Background(), events.IdempotencyKey("u2", key)) })
	c, err := r.Reserve(t.Context(), other)
	if err != nil || c.OrderID == a.OrderID {
		t.Errorf("Reserve by u2 with u1's key = %s, %v; want a new order", c.OrderID, err)
	}
}

func TestReserveOutboxEntry(t *testing.T) {
	rdb := testenv.Redis(t)
	p := sale(t, rdb, 10, 250, 0)
	r, stream := newReserver(t, rdb)
	got, err := r.Reserve(t.Context(), req(p, "u9", 3))
	if err != nil {
		t.Fatalf("Reserve error = %v", err)
	}
	entries, err := rdb.XRange(t.Context(), stream, "-", "+").Result()
	if err != nil || len(entries) != 1 {
		t.Fatalf("XRANGE outbox = %v, %v; want one entry", entries, err)
	}
	fields := map[string]string{}
	for k, v := range entries[0].Values {
		fields[k], _ = v.(string)
	}
	ev, err := stock.ParseFields(fields)
	if err != nil {
		t.Fatalf("ParseFields(%v) error = %v", fields, err)
	}
	if ev.OrderID != got.OrderID || ev.UserID != "u9" || ev.ProductID != p || ev.Quantity != 3 || ev.AmountCents != 750 {
		t.Errorf("outbox entry = %+v, want order %s u9 %s qty 3 amount 750", ev, got.OrderID, p)
	}
}

// TestReserveConcurrentBuyers: 1,000 buyers race for 100 units.
func TestReserveConcurrentBuyers(t *testing.T) {
	rdb := testenv.Redis(t)
	const buyers, units = 1000, 100
	p := sale(t, rdb, units, 100, 1)
	r, stream := newReserver(t, rdb)
	var ok, sold atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, buyers)
	for i := range buyers {
		wg.Go(func() {
			_, err := r.Reserve(context.Background(), req(p, fmt.Sprintf("u%d", i), 1))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, stock.ErrSoldOut):
				sold.Add(1)
			default:
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Reserve error = %v", err)
	}
	if ok.Load() != units || sold.Load() != buyers-units {
		t.Errorf("reserved %d, sold out %d; want %d, %d", ok.Load(), sold.Load(), units, buyers-units)
	}
	if left := stockOf(t, rdb, p); left != 0 {
		t.Errorf("stock = %d, want 0", left)
	}
	if n := rdb.XLen(t.Context(), stream).Val(); n != units {
		t.Errorf("outbox entries = %d, want %d", n, units)
	}
}

// TestReserveLastUnitRace: N goroutines compete for the last unit.
func TestReserveLastUnitRace(t *testing.T) {
	rdb := testenv.Redis(t)
	p := sale(t, rdb, 1, 100, 0)
	r, _ := newReserver(t, rdb)
	const n = 64
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := r.Reserve(context.Background(), req(p, fmt.Sprintf("u%d", i), 1))
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, stock.ErrSoldOut) {
				t.Errorf("Reserve error = %v, want nil or %v", err, stock.ErrSoldOut)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Errorf("successful reservations of the last unit = %d, want 1", ok.Load())
	}
	if left := stockOf(t, rdb, p); left != 0 {
		t.Errorf("stock = %d, want 0", left)
	}
}

func TestFlags(t *testing.T) {
	f := stock.NewFlags(time.Hour)
	if f.SoldOut("p") {
		t.Fatal("new flags: SoldOut(p) = true, want false")
	}
	f.Set("p", true)
	if !f.SoldOut("p") || f.SoldOut("q") {
		t.Fatal("after Set(p, true): SoldOut(p), SoldOut(q) != true, false")
	}
	f.Set("p", false)
	if f.SoldOut("p") {
		t.Fatal("after Set(p, false): SoldOut(p) = true")
	}
}
