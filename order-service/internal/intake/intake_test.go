package intake_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"seckill/order-service/internal/intake"
	"seckill/order-service/internal/outbox"
	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

func broker(t *testing.T) (*testbroker.Server, *mq.Producer) {
	t.Helper()
	// Delays 1000× shorter: a pay timeout is in its topic within milliseconds.
	srv := testbroker.Start(t, func(o *testbroker.Options) { o.DelayScale = 0.001 })
	for topic, q := range map[string]int{events.TopicOrder: 4, events.TopicSoldOut: 1, events.TopicOrderStats: 4} {
		srv.CreateTopic(topic, q)
	}
	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-intake-test",
		slog.New(slog.DiscardHandler), mq.NewMetrics(prometheus.NewRegistry(), "test"))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return srv, p
}

func sale(t *testing.T, rdb *redis.Client, units int) string {
	t.Helper()
	p := testenv.Unique(t, "p")
	rdb.Set(t.Context(), events.StockKey(p), units, time.Hour)
	rdb.HSet(t.Context(), events.InfoKey(p), "price", 100, "limit", 0)
	t.Cleanup(func() {
		rdb.Del(context.Background(), events.StockKey(p), events.InfoKey(p), events.UsersKey(p))
	})
	return p
}

// reserver is a Reserver on stream with a loaded marker of the test's own,
// set as inventory-service sets it.
func reserver(t *testing.T, rdb *redis.Client, stream string) *stock.Reserver {
	t.Helper()
	loaded := testenv.Unique(t, "loaded")
	rdb.Set(t.Context(), loaded, testenv.RunID(t, rdb), time.Hour)
	t.Cleanup(func() { rdb.Del(context.Background(), loaded, stream) })
	return stock.NewReserver(rdb, stock.Options{Stream: stream, TTL: time.Minute, Loaded: loaded})
}

func createdCount(srv *testbroker.Server) map[string]int {
	out := map[string]int{}
	for _, m := range srv.Messages(events.TopicOrder) {
		if m.Tags == events.TagCreated {
			out[m.Keys]++
		}
	}
	return out
}

func reservation(id string) stock.Reservation {
	now := time.Now().UTC()
	return stock.Reservation{Reservation: events.Reservation{
		OrderID: id, UserID: "u", ProductID: "p", Quantity: 1, CreatedAt: now, PayDeadline: now.Add(10 * time.Second),
	}}
}

// timedOut waits for the broker's delayed messages to come due and lists
// the orders the pay-timeout messages carry, by order ID.
func timedOut(t *testing.T, srv *testbroker.Server) map[string]int {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, "delayed messages due", func() bool { return srv.PendingDelayed() == 0 })
	out := map[string]int{}
	for _, m := range srv.Messages(events.TopicOrder) {
		if m.Tags != events.TagTimeout {
			continue
		}
		if m.SysFlag&1 != 0 {
			t.Fatalf("timeout message %s compressed (%d bytes): it should stay small", m.MsgID, len(m.Body))
		}
		ev, err := events.Decode[events.PayTimeout](m.Body)
		if err != nil {
			t.Fatalf("timeout message %s: %v", m.MsgID, err)
		}
		for _, id := range ev.OrderIDs {
			out[id]++
		}
	}
	return out
}

// TestBatcherGroupCommit: concurrent senders are answered after their batch
// is in the broker, and every message arrives once.
func TestBatcherGroupCommit(t *testing.T) {
	srv, p := broker(t)
	b := intake.NewBatcher(p, 64, 2*time.Millisecond, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	const n = 300
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := b.Send(t.Context(), reservation(fmt.Sprintf("o%d", i))); err != nil {
				t.Errorf("Send(o%d) error = %v", i, err)
			}
		})
	}
	wg.Wait()
	got := createdCount(srv)
	if len(got) != n {
		t.Errorf("orders in the broker = %d, want %d", len(got), n)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("messages for %s = %d, want 1", id, c)
		}
	}
	// Each batch sent one delayed pay timeout carrying its orders.
	if got := timedOut(t, srv); len(got) != n {
		t.Errorf("orders in pay timeouts = %d, want %d", len(got), n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestBatcherReportsSendFailure(t *testing.T) {
	srv, p := broker(t)
	b := intake.NewBatcher(p, 64, 2*time.Millisecond, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	srv.RefuseSends(true)
	if err := b.Send(t.Context(), reservation("o1")); err == nil {
		t.Fatal("Send while the broker refuses sends: error = nil, want an error")
	}
}

// TestHandoffFailureLeavesOrderInOutbox: in batch and sync modes a hand-off
// the broker refuses leaves the order where the reservation script put it,
// in the outbox: the buyer gets the order (no second order or
// limit_exceeded on a retry without a key), its units are held by it, and
// the sender's sweep hands it on once the broker takes sends again, once.
// A hand-off that succeeds deletes its entry.
func TestHandoffFailureLeavesOrderInOutbox(t *testing.T) {
	for _, mode := range []string{intake.ModeSync, intake.ModeBatch} {
		t.Run(mode, func(t *testing.T) {
			rdb := testenv.Redis(t)
			srv, p := broker(t)
			product := sale(t, rdb, 5)
			stream := testenv.Unique(t, "outbox")
			t.Cleanup(func() { rdb.Del(context.Background(), stream) })
			r := reserver(t, rdb, stream)
			opts := intake.Options{Mode: mode, TimeoutLevel: 3, Deleter: outbox.NewDeleter(rdb, stream)}
			if mode == intake.ModeBatch {
				opts.Batcher = intake.NewBatcher(p, 64, 2*time.Millisecond, 3)
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- opts.Batcher.Run(ctx) }()
				t.Cleanup(func() { cancel(); <-done })
			}
			svc := intake.New(r, stock.NewFlags(time.Minute), p, opts, slog.New(slog.DiscardHandler))

			ok, err := svc.Place(t.Context(), intake.Request{UserID: "u0", ProductID: product, Quantity: 1})
			if err != nil || rdb.XLen(t.Context(), stream).Val() != 0 || createdCount(srv)[ok.OrderID] != 1 {
				t.Fatalf("Place with the broker up = %v; outbox %d entries, %d created messages; want nil, 0, 1",
					err, rdb.XLen(t.Context(), stream).Val(), createdCount(srv)[ok.OrderID])
			}
			srv.RefuseSends(true)
			o, err := svc.Place(t.Context(), intake.Request{UserID: "u1", ProductID: product, Quantity: 1})
			if err != nil || o.OrderID == "" {
				t.Fatalf("Place while the broker refuses = %+v, %v; want the order (it is in the outbox)", o, err)
			}
			if n := rdb.XLen(t.Context(), stream).Val(); n != 1 {
				t.Fatalf("outbox entries after the failed hand-off = %d, want 1", n)
			}
			srv.RefuseSends(false)
			sender := outbox.New(rdb, p, outbox.Options{Stream: stream, Consumer: "t", TimeoutLevel: 3, MinAge: time.Hour},
				slog.New(slog.DiscardHandler), prometheus.NewRegistry())
			if n, err := sender.SweepOnce(t.Context(), time.Hour); err != nil || n != 0 {
				t.Fatalf("SweepOnce(1h) = %d, %v; want 0 (the entry is younger)", n, err)
			}
			if n, err := sender.SweepOnce(t.Context(), 0); err != nil || n != 1 {
				t.Fatalf("SweepOnce(0) = %d, %v; want 1", n, err)
			}
			if got := createdCount(srv)[o.OrderID]; got != 1 {
				t.Errorf("created messages for %s = %d, want 1", o.OrderID, got)
			}
			if n := rdb.XLen(t.Context(), stream).Val(); n != 0 {
				t.Errorf("outbox entries after the sweep = %d, want 0", n)
			}
			if left := rdb.Get(t.Context(), events.StockKey(product)).Val(); left != "3" {
				t.Errorf("stock = %s, want 3 (two orders)", left)
			}
		})
	}
}

// TestSoldOutFlag: the order that takes the last unit broadcasts SOLDOUT and
// flags the product; the flag rejects without Redis, and clearing it lets
// orders through again.
func TestSoldOutFlag(t *testing.T) {
	rdb := testenv.Redis(t)
	srv, p := broker(t)
	product := sale(t, rdb, 1)
	flags := stock.NewFlags(time.Hour)
	svc := intake.New(reserver(t, rdb, testenv.Unique(t, "outbox")),
		flags, p, intake.Options{Mode: intake.ModeOutbox, TimeoutLevel: 3}, slog.New(slog.DiscardHandler))
	if _, err := svc.Place(t.Context(), intake.Request{UserID: "u1", ProductID: product, Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if !flags.SoldOut(product) || len(srv.Messages(events.TopicSoldOut)) != 1 {
		t.Fatalf("after the last unit: flag %v, SOLDOUT messages %d; want true, 1", flags.SoldOut(product), len(srv.Messages(events.TopicSoldOut)))
	}
	rdb.Set(t.Context(), events.StockKey(product), 1, time.Hour) // stock back, but the flag still says sold out
	if _, err := svc.Place(t.Context(), intake.Request{UserID: "u2", ProductID: product, Quantity: 1}); !errors.Is(err, stock.ErrSoldOut) {
		t.Fatalf("Place with the flag set = %v, want %v", err, stock.ErrSoldOut)
	}
	flags.Set(product, false) // SOLDOUT{false} from inventory
	if _, err := svc.Place(t.Context(), intake.Request{UserID: "u2", ProductID: product, Quantity: 1}); err != nil {
		t.Fatalf("Place after the flag cleared = %v, want nil", err)
	}
}

// TestIdempotentRetryAfterSoldOut: a client whose 202 was lost retries with
// its Idempotency-Key after the sell-out flag is set and gets its order back,
// not sold_out.
func TestIdempotentRetryAfterSoldOut(t *testing.T) {
	rdb := testenv.Redis(t)
	_, p := broker(t)
	product := sale(t, rdb, 1)
	flags := stock.NewFlags(time.Hour)
	svc := intake.New(reserver(t, rdb, testenv.Unique(t, "outbox")),
		flags, p, intake.Options{Mode: intake.ModeOutbox, TimeoutLevel: 3}, slog.New(slog.DiscardHandler))
	// Keys unique to the run: a key left by an earlier run (TTL 1 min) would replay.
	k1, k2 := testenv.Unique(t, "k1"), testenv.Unique(t, "k2")
	req := intake.Request{UserID: "u1", ProductID: product, Quantity: 1, IdempotencyKey: k1}
	first, err := svc.Place(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !flags.SoldOut(product) {
		t.Fatalf("flag after the last unit = false, want true")
	}
	again, err := svc.Place(t.Context(), req)
	if err != nil || again.OrderID != first.OrderID || !again.Replayed {
		t.Fatalf("retry after sell-out = %+v, %v; want order %s replayed", again, err, first.OrderID)
	}
	if _, err := svc.Place(t.Context(), intake.Request{UserID: "u2", ProductID: product, Quantity: 1, IdempotencyKey: k2}); !errors.Is(err, stock.ErrSoldOut) {
		t.Fatalf("new key after sell-out = %v, want %v", err, stock.ErrSoldOut)
	}
}

func TestNewOrderIDOrderedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for range 10000 {
		id := intake.NewOrderID()
		if len(id) != 32 || seen[id] {
			t.Fatalf("NewOrderID() = %q: want 32 hex digits, unique", id)
		}
		if id[:12] < prev[:min(12, len(prev))] {
			t.Fatalf("NewOrderID() = %q sorts before the previous %q", id, prev)
		}
		seen[id], prev = true, id
	}
}
