package board_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"seckill/console/internal/board"
	"seckill/console/internal/scrape"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
)

// TestPoller runs the poller against fake services (one of them down) and
// the embedded broker, and checks the boards it publishes.
func TestPoller(t *testing.T) {
	broker := testbroker.Start(t)
	broker.CreateTopic("ORDER", 4)

	var accepted atomic.Int64
	var sinceSeen atomic.Value
	order := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprintf(w, "# TYPE order_requests_total counter\norder_requests_total{result=\"accepted\"} %d\n", accepted.Add(10))
			fmt.Fprint(w, "# TYPE order_consumer_lag gauge\norder_consumer_lag{group=\"GID-order\"} 7\n")
		case "/api/v1/order-counts":
			sinceSeen.Store(r.URL.Query().Get("since") + " " + r.URL.Query().Get("product_id"))
			fmt.Fprint(w, `{"products":[{"product_id":"p1","counts":{"created":2,"paid":1}}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(order.Close)
	inventory := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/metrics":
			fmt.Fprint(w, "# TYPE inventory_messages_consumed_total counter\ninventory_messages_consumed_total{group=\"GID-inventory\",topic=\"ORDER\",result=\"ok\"} 3\n")
		case "/api/v1/products":
			if r.URL.Query().Get("limit") != "5" {
				http.Error(w, "limit", http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, `{"products":[{"product_id":"p1","name":"phone","stock":10,"available":7,"sold":3,"sale_started_at":"2026-12-04T10:00:00Z"}]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(inventory.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close() // payment-service is down: its address refuses connections

	client := scrape.New(time.Second)
	t.Cleanup(client.Close)
	p := board.NewPoller(board.Options{
		Services: []board.Source{
			{Name: "order", URL: order.URL}, {Name: "inventory", URL: inventory.URL}, {Name: "payment", URL: gone.URL},
		},
		InventoryURL: inventory.URL, OrderURL: order.URL,
		MQ:          mq.Config{NameServers: []string{broker.NameSrvAddr()}},
		ConsumeRate: 50, Interval: 100 * time.Millisecond, Products: 5,
	}, client, slog.New(slog.DiscardHandler))
	boards, cancelSub := p.Subscribe()
	defer cancelSub()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v, want nil after cancel", err)
		}
	}()

	var b board.Board
	for b.Seq < 3 {
		select {
		case b = <-boards:
		case <-time.After(10 * time.Second):
			t.Fatalf("no third board within 10 s (last %+v)", b)
		}
	}
	up := map[string]bool{}
	for _, s := range b.Services {
		up[s.Name] = s.Up
	}
	if !up["order"] || !up["inventory"] || up["payment"] {
		t.Errorf("services up = %v, want order and inventory up, payment down", up)
	}
	if !b.Broker.Up || b.Broker.Stored.Total == nil || *b.Broker.Stored.Total != 0 {
		t.Errorf("broker = %+v, want up with 0 messages stored in ORDER", b.Broker)
	}
	if b.Front.Accepted.PerS == nil || *b.Front.Accepted.PerS <= 0 {
		t.Errorf("accepted/s = %v, want > 0 (the counter grows by 10 a read)", b.Front.Accepted.PerS)
	}
	groups := map[string]string{}
	for _, g := range b.Groups {
		groups[g.Group] = g.Service
	}
	if groups["GID-order"] != "order" || groups["GID-inventory"] != "inventory" || len(groups) != 2 {
		t.Errorf("groups = %v, want GID-order (order) and GID-inventory (inventory)", groups)
	}
	if len(b.Products) != 1 || b.Products[0].Available != 7 || b.Products[0].Pending == nil || *b.Products[0].Pending != 2 {
		t.Errorf("products = %+v, want p1 with 7 available and 2 pending", b.Products)
	}
	if got, want := sinceSeen.Load(), "2026-12-04T10:00:00Z p1"; got != want {
		t.Errorf("order counts asked with since and product_id %q, want %q", got, want)
	}
	if latest, ok := p.Latest(); !ok || latest.Seq < b.Seq {
		t.Errorf("Latest() = #%d, %v, want at least #%d", latest.Seq, ok, b.Seq)
	}
	if h := p.History(); len(h) < 3 {
		t.Errorf("History() has %d points, want one per board (≥ 3)", len(h))
	}
}
