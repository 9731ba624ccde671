package stock_test

import (
	"errors"
	"testing"
	"time"

	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/testenv"
)

// TestReserveAfterRedisRestart: a Redis that restarts comes back with what
// it had saved (here a snapshot taken after the first order: the second
// order's reservation is lost, as the last second is after a crash with
// appendfsync everysec). No order is reserved against that until
// inventory-service has checked the new run (the loaded marker names it):
// the restart emptied the script cache, and loading the script again
// deletes a marker that names another run.
func TestReserveAfterRedisRestart(t *testing.T) {
	srv := testenv.StartRedisServer(t)
	rdb := srv.Client(t)
	ctx := t.Context()
	p := sale(t, rdb, 5, 100, 0)
	loaded := "loaded"
	rdb.Set(ctx, loaded, testenv.RunID(t, rdb), 0)
	r := stock.NewReserver(rdb, stock.Options{Stream: "outbox", TTL: time.Minute, Loaded: loaded})
	if _, err := r.Reserve(ctx, req(p, "u1", 1)); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reserve(ctx, req(p, "u2", 1)); err != nil { // lost with the restart
		t.Fatal(err)
	}
	srv.Kill()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if left := stockOf(t, rdb, p); left != 4 {
		t.Fatalf("stock after the restart = %d, want 4 (the snapshot)", left)
	}

	if _, err := r.Reserve(ctx, req(p, "u3", 1)); !errors.Is(err, stock.ErrNotLoaded) {
		t.Fatalf("Reserve after the restart = %v, want %v until inventory-service checked the new run", err, stock.ErrNotLoaded)
	}
	if left := stockOf(t, rdb, p); left != 4 {
		t.Errorf("stock after the refused order = %d, want 4", left)
	}
	if n := rdb.Exists(ctx, loaded).Val(); n != 0 {
		t.Errorf("loaded marker naming the old run still there")
	}
	// inventory-service rebuilds the stock from its database (both orders
	// reached it) and marks the new run checked.
	rdb.Set(ctx, events.StockKey(p), 3, 0)
	rdb.Set(ctx, loaded, testenv.RunID(t, rdb), 0)
	if _, err := r.Reserve(ctx, req(p, "u4", 1)); err != nil {
		t.Fatalf("Reserve once the new run is checked = %v, want nil", err)
	}
	if left := stockOf(t, rdb, p); left != 2 {
		t.Errorf("stock = %d, want 2", left)
	}
}
