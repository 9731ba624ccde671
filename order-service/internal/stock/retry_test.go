package stock_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/testenv"
)

// A reservation script run twice with the same arguments (the Redis client
// sends a command again when it lost the reply: MaxRetries) reserves once
// and answers the second run as the first: same order, not a replay, and no
// limit_exceeded for the order the first run accepted.
func TestReserveRunTwice(t *testing.T) {
	rdb := testenv.Redis(t)
	tests := []struct {
		name  string
		limit int
		key   bool
	}{
		{"limit 1", 1, false},
		{"no limit", 0, false},
		{"limit 1 with an idempotency key", 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := sale(t, rdb, 5, 100, tc.limit)
			r, stream := newReserver(t, rdb)
			o := req(p, "u1", 1)
			if tc.key {
				o.IdempotencyKey = testenv.Unique(t, "k")
				t.Cleanup(func() { rdb.Del(context.Background(), events.IdempotencyKey("u1", o.IdempotencyKey)) })
			}
			first, err := r.Reserve(t.Context(), o)
			if err != nil {
				t.Fatalf("first Reserve error = %v", err)
			}
			again, err := r.Reserve(t.Context(), o)
			if err != nil {
				t.Fatalf("Reserve of the same order again error = %v, want nil", err)
			}
			if again.OrderID != first.OrderID || again.Replayed || again.AmountCents != first.AmountCents {
				t.Errorf("Reserve again = order %s replayed %v amount %d, want order %s replayed false amount %d",
					again.OrderID, again.Replayed, again.AmountCents, first.OrderID, first.AmountCents)
			}
			assertReservedOnce(t, rdb, p, stream)
		})
	}
}

// TestReserveClientRetry: the reply of the script is lost on the wire and
// go-redis sends it again on a new connection; the order is reserved once.
func TestReserveClientRetry(t *testing.T) {
	lr := testenv.RedisLostReply(t, "evalsha")
	rdb := testenv.Redis(t)
	p := sale(t, rdb, 5, 100, 1)
	_, stream, loaded := newReserverLoaded(t, rdb)
	r := stock.NewReserver(lr.Client, stock.Options{Stream: stream, TTL: time.Minute, Loaded: loaded})
	// The script is loaded first, so the lost reply is the reservation's own.
	if _, err := r.Reserve(t.Context(), req(p, "warm-up", 1)); err != nil {
		t.Fatalf("warm-up Reserve error = %v", err)
	}
	rdb.Set(t.Context(), events.StockKey(p), 5, 0)
	rdb.Del(t.Context(), events.UsersKey(p), stream)
	lr.Arm()
	if _, err := r.Reserve(t.Context(), req(p, "u1", 1)); err != nil {
		t.Fatalf("Reserve with its reply lost once = %v, want nil (the retry answers the first run)", err)
	}
	if lr.Lost() != 1 {
		t.Fatalf("replies lost = %d, want 1", lr.Lost())
	}
	assertReservedOnce(t, rdb, p, stream)
}

// assertReservedOnce checks that u1 holds one unit of p's 5: stock, per-user
// count and outbox.
func assertReservedOnce(t *testing.T, rdb *redis.Client, p, stream string) {
	t.Helper()
	ctx := t.Context()
	if left := stockOf(t, rdb, p); left != 4 {
		t.Errorf("stock = %d, want 4 (one unit reserved)", left)
	}
	if n, _ := rdb.HGet(ctx, events.UsersKey(p), "u1").Int(); n != 1 {
		t.Errorf("units of u1 = %d, want 1", n)
	}
	if n := rdb.XLen(ctx, stream).Val(); n != 1 {
		t.Errorf("outbox entries = %d, want 1", n)
	}
}

// TestReserveCarriesSaleID: a reservation carries the sale_id of the info
// hash it was decided against (written there with the stock by the sale's
// warm-up) into its created event and outbox entry, also when the same
// call comes again; a product warmed before sale_id existed gives 0.
func TestReserveCarriesSaleID(t *testing.T) {
	rdb := testenv.Redis(t)
	for _, tc := range []struct {
		name string
		sale string // "" = no sale_id field
		want int64
	}{{"sale 7", "7", 7}, {"no sale_id", "", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			p := sale(t, rdb, 5, 100, 0)
			if tc.sale != "" {
				rdb.HSet(t.Context(), events.InfoKey(p), "sale_id", tc.sale)
			}
			r, stream := newReserver(t, rdb)
			o := req(p, "u1", 1)
			got, err := r.Reserve(t.Context(), o)
			if err != nil || got.SaleID != tc.want || got.Created().SaleID != tc.want {
				t.Fatalf("Reserve = sale %d, created event sale %d (%v); want %d", got.SaleID, got.Created().SaleID, err, tc.want)
			}
			if again, err := r.Reserve(t.Context(), o); err != nil || again.SaleID != tc.want {
				t.Errorf("Reserve of the same call again = sale %d (%v), want %d", again.SaleID, err, tc.want)
			}
			entries, err := rdb.XRange(t.Context(), stream, "-", "+").Result()
			if err != nil || len(entries) != 1 {
				t.Fatalf("outbox = %v (%v), want one entry", entries, err)
			}
			fields := map[string]string{}
			for k, v := range entries[0].Values {
				fields[k], _ = v.(string)
			}
			if e, err := stock.ParseFields(fields); err != nil || e.SaleID != tc.want {
				t.Errorf("outbox entry = %+v (%v), want sale %d", e, err, tc.want)
			}
			if pend, err := r.Pending(t.Context(), got.OrderID); err != nil || pend.SaleID != tc.want {
				t.Errorf("Pending = %+v (%v), want sale %d", pend, err, tc.want)
			}
		})
	}
}
