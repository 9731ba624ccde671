package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"seckill/order-service/internal/outbox"
	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

type fixture struct {
	rdb      *redis.Client
	srv      *testbroker.Server
	producer *mq.Producer
	stream   string
	reserver *stock.Reserver
	product  string
}

func setup(t *testing.T, units int) fixture {
	t.Helper()
	rdb := testenv.Redis(t)
	srv := testbroker.Start(t)
	srv.CreateTopic(events.TopicOrder, 4)
	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-outbox-test",
		slog.New(slog.DiscardHandler), mq.NewMetrics(prometheus.NewRegistry(), "test"))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	stream := testenv.Unique(t, "outbox")
	product := testenv.Unique(t, "p")
	ctx := t.Context()
	rdb.Set(ctx, events.StockKey(product), units, time.Hour)
	rdb.HSet(ctx, events.InfoKey(product), "price", 500, "limit", 0)
	t.Cleanup(func() {
		rdb.Del(context.Background(), stream, events.StockKey(product), events.InfoKey(product), events.UsersKey(product))
	})
	loaded := testenv.Unique(t, "loaded")
	rdb.Set(ctx, loaded, testenv.RunID(t, rdb), time.Hour)
	t.Cleanup(func() { rdb.Del(context.Background(), loaded) })
	r := stock.NewReserver(rdb, stock.Options{Stream: stream, TTL: time.Minute, Loaded: loaded})
	return fixture{rdb: rdb, srv: srv, producer: p, stream: stream, reserver: r, product: product}
}

func (f fixture) newSender(opts outbox.Options) *outbox.Sender {
	opts.Stream = f.stream
	if opts.Consumer == "" {
		opts.Consumer = "test"
	}
	return outbox.New(f.rdb, f.producer, opts, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
}

// reserve makes n reservations and returns their order IDs.
func (f fixture) reserve(t *testing.T, n int) map[string]stock.Reservation {
	t.Helper()
	out := map[string]stock.Reservation{}
	for i := range n {
		r, err := f.reserver.Reserve(t.Context(), stock.Request{
			OrderID: fmt.Sprintf("%s-o%d", f.product, i), UserID: fmt.Sprintf("u%d", i),
			ProductID: f.product, Quantity: 1, Now: time.Now(),
		})
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		out[r.OrderID] = r
	}
	return out
}

// created decodes the created messages in the broker, by order ID.
func (f fixture) created(t *testing.T) map[string][]events.OrderCreated {
	t.Helper()
	out := map[string][]events.OrderCreated{}
	for _, m := range f.srv.Messages(events.TopicOrder) {
		if m.Tags != events.TagCreated {
			continue
		}
		var ev events.OrderCreated
		if err := json.Unmarshal(m.Body, &ev); err != nil {
			t.Fatalf("created message body %q: %v", m.Body, err)
		}
		if m.Keys != ev.OrderID {
			t.Errorf("message keys = %q, want %q", m.Keys, ev.OrderID)
		}
		out[ev.OrderID] = append(out[ev.OrderID], ev)
	}
	return out
}

func (f fixture) checkDrained(t *testing.T) {
	t.Helper()
	if n := f.rdb.XLen(context.Background(), f.stream).Val(); n != 0 {
		t.Errorf("outbox length = %d, want 0 (acked entries are deleted)", n)
	}
	p, err := f.rdb.XPending(context.Background(), f.stream, "order-outbox").Result()
	if err != nil {
		t.Fatalf("XPENDING: %v", err)
	}
	if p.Count != 0 {
		t.Errorf("pending entries = %d, want 0", p.Count)
	}
}

func (f fixture) checkSent(t *testing.T, want map[string]stock.Reservation) {
	t.Helper()
	got := f.created(t)
	if len(got) != len(want) {
		t.Errorf("orders with a created message = %d, want %d", len(got), len(want))
	}
	for id, r := range want {
		evs := got[id]
		if len(evs) != 1 {
			t.Errorf("created messages for %s = %d, want 1", id, len(evs))
			continue
		}
		ev := evs[0]
		if ev.EventID != id+":created" || ev.UserID != r.UserID || ev.ProductID != f.product || ev.Quantity != 1 ||
			ev.AmountCents != 500 || !ev.CreatedAt.Equal(r.CreatedAt) || ev.Version != events.Version {
			t.Errorf("created event = %+v, want it to match reservation %+v", ev, r)
		}
	}
}

// TestRunDrainsOnShutdown: intake has stopped (ctx already done) with 150
// entries in the outbox; Run sends them all before it returns.
func TestRunDrainsOnShutdown(t *testing.T) {
	f := setup(t, 1000)
	want := f.reserve(t, 150)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.newSender(outbox.Options{}).Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.checkSent(t, want)
	f.checkDrained(t)
}

// TestRunSendsWhileRunning: entries added while the sender runs become messages.
func TestRunSendsWhileRunning(t *testing.T) {
	f := setup(t, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.newSender(outbox.Options{}).Run(ctx) }()
	want := f.reserve(t, 100)
	deadline := time.Now().Add(20 * time.Second)
	for f.rdb.XLen(t.Context(), f.stream).Val() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.checkSent(t, want)
	f.checkDrained(t)
}

// TestReclaimDeadSender: a sender read entries and died before acking; a
// live sender claims and sends them.
func TestReclaimDeadSender(t *testing.T) {
	f := setup(t, 1000)
	want := f.reserve(t, 10)
	s := f.newSender(outbox.Options{MinIdle: time.Millisecond})
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	read, err := f.rdb.XReadGroup(t.Context(), &redis.XReadGroupArgs{
		Group: "order-outbox", Consumer: "dead", Streams: []string{f.stream, ">"}, Count: 100,
	}).Result()
	if err != nil || len(read) != 1 || len(read[0].Messages) != 10 {
		t.Fatalf("dead consumer read = %v, %v; want 10 entries", read, err)
	}
	time.Sleep(10 * time.Millisecond) // idle longer than MinIdle
	n, err := s.ReclaimOnce(t.Context(), "alive")
	if err != nil || n != 10 {
		t.Fatalf("ReclaimOnce = %d, %v; want 10, nil", n, err)
	}
	f.checkSent(t, want)
	f.checkDrained(t)
}

// TestSendFailureKeepsEntries: while the broker refuses sends, entries stay
// pending; the retry after the broker is back sends them once.
func TestSendFailureKeepsEntries(t *testing.T) {
	f := setup(t, 1000)
	want := f.reserve(t, 5)
	s := f.newSender(outbox.Options{})
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	read, err := f.rdb.XReadGroup(t.Context(), &redis.XReadGroupArgs{
		Group: "order-outbox", Consumer: "test-0", Streams: []string{f.stream, ">"}, Count: 100,
	}).Result()
	if err != nil || len(read) != 1 {
		t.Fatalf("XREADGROUP = %v, %v", read, err)
	}
	f.srv.RefuseSends(true)
	if err := s.Send(t.Context(), read[0].Messages); err == nil {
		t.Fatal("Send while the broker refuses sends: error = nil, want an error")
	}
	if p := f.rdb.XPending(t.Context(), f.stream, "order-outbox").Val(); p.Count != 5 {
		t.Fatalf("pending after a failed send = %d, want 5", p.Count)
	}
	f.srv.RefuseSends(false)
	// Run re-reads its own pending entries first ("test-0" is its first sender).
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.checkSent(t, want)
	f.checkDrained(t)
}

func TestMalformedEntryIsDropped(t *testing.T) {
	f := setup(t, 10)
	want := f.reserve(t, 1)
	f.rdb.XAdd(t.Context(), &redis.XAddArgs{Stream: f.stream, Values: []any{"order_id", "x", "quantity", "many"}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.newSender(outbox.Options{}).Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.checkSent(t, want)
	f.checkDrained(t)
}

// TestRunRecreatesVanishedGroup: the stream and its group disappear (Redis
// restarted empty) while the sender runs; it recreates the group and sends
// new entries.
func TestRunRecreatesVanishedGroup(t *testing.T) {
	f := setup(t, 1000)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	s := f.newSender(outbox.Options{MaxBackoff: 100 * time.Millisecond})
	if err := s.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	go func() { done <- s.Run(ctx) }()
	f.rdb.Del(t.Context(), f.stream)
	want := f.reserve(t, 3)
	deadline := time.Now().Add(20 * time.Second)
	for len(f.created(t)) < 3 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	f.checkSent(t, want)
	f.checkDrained(t)
}

// TestSenderSweepMode (batch and sync modes): the sender leaves entries
// younger than MinAge to the requests handing them on, sends the older
// ones, and on shutdown sends what is left whatever its age.
func TestSenderSweepMode(t *testing.T) {
	f := setup(t, 10)
	old := f.reserve(t, 3)
	time.Sleep(400 * time.Millisecond)
	s := f.newSender(outbox.Options{MinAge: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	testenv.Eventually(t, 30*time.Second, "entries older than MinAge sent", func() bool { return len(f.created(t)) == 3 })
	f.checkSent(t, old)
	fresh := f.reserver
	r, err := fresh.Reserve(t.Context(), stock.Request{OrderID: f.product + "-fresh", UserID: "uf", ProductID: f.product, Quantity: 1, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(f.created(t)); n != 3 {
		t.Errorf("orders sent 100 ms after a new reservation = %d, want 3 (it is younger than MinAge)", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	old[r.OrderID] = r
	f.checkSent(t, old)
	if n := f.rdb.XLen(context.Background(), f.stream).Val(); n != 0 {
		t.Errorf("outbox length after shutdown = %d, want 0", n)
	}
}
