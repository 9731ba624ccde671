package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/order-service/internal/httpapi"
	"seckill/order-service/internal/intake"
	"seckill/order-service/internal/order"
	"seckill/order-service/internal/outbox"
	"seckill/order-service/internal/stock"
	"seckill/order-service/migrations"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

type fixture struct {
	h       http.Handler
	rdb     *redis.Client
	db      *gorm.DB
	srv     *testbroker.Server
	product string
	stream  string
	loaded  string // the loaded marker (events.LoadedKey in production)
	monitor *outbox.Monitor
}

// setup serves the API in mode with a product of `units` units at 250 cents
// and a per-user limit of 2.
func setup(t testing.TB, mode string, units int) fixture {
	t.Helper()
	rdb := testenv.Redis(t)
	gdb := testenv.MariaDB(t, dedup.Migrations, migrations.FS)
	srv := testbroker.Start(t)
	for topic, q := range map[string]int{events.TopicOrder: 4, events.TopicSoldOut: 1, events.TopicOrderStats: 4} {
		srv.CreateTopic(topic, q)
	}
	log := slog.New(slog.DiscardHandler)
	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-api-test", log,
		mq.NewMetrics(prometheus.NewRegistry(), "test"))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	product, stream, loaded := testenv.Unique(t, "p"), testenv.Unique(t, "outbox"), testenv.Unique(t, "loaded")
	ctx := t.Context()
	rdb.Set(ctx, events.StockKey(product), units, time.Hour)
	rdb.HSet(ctx, events.InfoKey(product), "price", 250, "limit", 2)
	rdb.Set(ctx, loaded, testenv.RunID(t, rdb), time.Hour)
	t.Cleanup(func() {
		rdb.Del(context.Background(), stream, loaded, events.StockKey(product), events.InfoKey(product), events.UsersKey(product))
	})
	var batcher *intake.Batcher
	if mode == intake.ModeBatch {
		batcher = intake.NewBatcher(p, 64, 2*time.Millisecond, 3)
		bctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { batcher.Run(bctx); close(done) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	r := stock.NewReserver(rdb, stock.Options{Stream: stream, TTL: time.Minute, Loaded: loaded})
	monitor := outbox.NewMonitor(rdb, stream, time.Hour, log, prometheus.NewRegistry()) // sampled by the tests
	svc := intake.New(r, stock.NewFlags(time.Minute), p, intake.Options{Mode: mode, TimeoutLevel: 3, Batcher: batcher,
		Deleter: outbox.NewDeleter(rdb, stream), Outbox: monitor, MaxOutboxAge: 30 * time.Second}, log)
	reg := prometheus.NewRegistry()
	e := httpx.NewEngine(log, reg, "order")
	httpapi.New(svc, gdb, log, reg).Routes(e)
	return fixture{h: e, rdb: rdb, db: gdb, srv: srv, product: product, stream: stream, loaded: loaded, monitor: monitor}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

func (f fixture) do(t *testing.T, method, path, body string, hdr ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, req)
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, w.Body.String(), err)
	}
	return response{status: w.Code, header: w.Header(), body: m}
}

func (f fixture) post(t *testing.T, body string, hdr ...string) response {
	t.Helper()
	return f.do(t, http.MethodPost, "/api/v1/orders", body, hdr...)
}

func TestCreateBadInput(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 100)
	p := f.product
	long := strings.Repeat("x", 65)
	tests := []struct {
		name, body, header string
		wantStatus         int
		wantCode, field    string
	}{
		{"empty body", ``, "", 400, "invalid_request", ""},
		{"malformed JSON", `{"user_id":`, "", 400, "invalid_request", ""},
		{"not an object", `[1,2]`, "", 400, "invalid_request", ""},
		{"two values", `{"user_id":"u","product_id":"p","quantity":1}{}`, "", 400, "invalid_request", ""},
		{"unknown field", `{"user_id":"u","product_id":"p","quantity":1,"price":0}`, "", 400, "invalid_request", "price"},
		{"missing user_id", `{"product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"missing product_id", `{"user_id":"u","quantity":1}`, "", 400, "invalid_request", "product_id"},
		{"missing quantity", `{"user_id":"u","product_id":"p"}`, "", 400, "invalid_request", "quantity"},
		{"empty user_id", `{"user_id":"","product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"empty product_id", `{"user_id":"u","product_id":"","quantity":1}`, "", 400, "invalid_request", "product_id"},
		{"user_id too long", `{"user_id":"` + long + `","product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"product_id too long", `{"user_id":"u","product_id":"` + long + `","quantity":1}`, "", 400, "invalid_request", "product_id"},
		{"user_id with space", `{"user_id":"a b","product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"user_id with colon", `{"user_id":"a:b","product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"product_id not ASCII", `{"user_id":"u","product_id":"p\u00e9","quantity":1}`, "", 400, "invalid_request", "product_id"},
		{"control character", `{"user_id":"u\u0000","product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"user_id a number", `{"user_id":7,"product_id":"p","quantity":1}`, "", 400, "invalid_request", "user_id"},
		{"quantity a string", `{"user_id":"u","product_id":"p","quantity":"1"}`, "", 400, "invalid_request", "quantity"},
		{"quantity a fraction", `{"user_id":"u","product_id":"p","quantity":1.5}`, "", 400, "invalid_request", "quantity"},
		{"quantity huge", `{"user_id":"u","product_id":"p","quantity":1e30}`, "", 400, "invalid_request", "quantity"},
		{"quantity zero", `{"user_id":"u","product_id":"p","quantity":0}`, "", 400, "invalid_request", "quantity"},
		{"quantity negative", `{"user_id":"u","product_id":"p","quantity":-1}`, "", 400, "invalid_request", "quantity"},
		{"quantity over 100", `{"user_id":"u","product_id":"p","quantity":101}`, "", 400, "invalid_request", "quantity"},
		{"quantity null", `{"user_id":"u","product_id":"p","quantity":null}`, "", 400, "invalid_request", "quantity"},
		{"idempotency key too long", `{"user_id":"u","product_id":"` + p + `","quantity":1}`, strings.Repeat("k", 129), 400, "invalid_request", "Idempotency-Key"},
		{"unknown product", `{"user_id":"u","product_id":"nope-` + p + `","quantity":1}`, "", 404, "unknown_product", ""},
		{"more than the limit", `{"user_id":"u","product_id":"` + p + `","quantity":3}`, "", 409, "limit_exceeded", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.header != "" {
				hdr = []string{"Idempotency-Key", tc.header}
			}
			got := f.post(t, tc.body, hdr...)
			if got.status != tc.wantStatus || got.body["error"] != tc.wantCode {
				t.Fatalf("POST %s = %d %v, want %d %s", tc.body, got.status, got.body, tc.wantStatus, tc.wantCode)
			}
			msg, _ := got.body["message"].(string)
			if tc.field != "" && !strings.HasPrefix(msg, tc.field+":") {
				t.Errorf("POST %s message = %q, want it to name field %s", tc.body, msg, tc.field)
			}
		})
	}
	if n := f.rdb.Get(t.Context(), events.StockKey(p)).Val(); n != "100" {
		t.Errorf("stock after rejected requests = %s, want 100", n)
	}
}

func TestCreateTooLarge(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 1)
	big := `{"user_id":"` + strings.Repeat("x", 2<<20) + `","product_id":"p","quantity":1}`
	if got := f.post(t, big); got.status != http.StatusRequestEntityTooLarge {
		t.Errorf("POST of 2 MiB = %d %v, want 413", got.status, got.body)
	}
}

func TestCreateAndGet(t *testing.T) {
	for _, mode := range []string{intake.ModeOutbox, intake.ModeBatch, intake.ModeSync} {
		t.Run(mode, func(t *testing.T) {
			f := setup(t, mode, 2)
			body := `{"user_id":"u1","product_id":"` + f.product + `","quantity":1}`
			key := testenv.Unique(t, "k")
			first := f.post(t, body, "Idempotency-Key", key)
			if first.status != http.StatusAccepted || first.body["status"] != "pending" || first.body["order_id"] == "" {
				t.Fatalf("POST = %d %v, want 202 pending with an order_id", first.status, first.body)
			}
			id := first.body["order_id"].(string)
			again := f.post(t, body, "Idempotency-Key", key)
			if again.status != http.StatusAccepted || again.body["order_id"] != id {
				t.Errorf("POST with the same Idempotency-Key = %d %v, want 202 order %s", again.status, again.body, id)
			}
			t.Cleanup(func() { f.rdb.Del(context.Background(), events.IdempotencyKey("u1", key), events.OrderKey(id)) })

			got := f.do(t, http.MethodGet, "/api/v1/orders/"+id, "")
			if got.status != http.StatusOK || got.body["status"] != "pending" || got.body["amount_cents"] != 250.0 ||
				got.body["user_id"] != "u1" || got.body["quantity"] != 1.0 {
				t.Errorf("GET pending order = %d %v, want 200 pending u1 qty 1 amount 250", got.status, got.body)
			}
			now := time.Now().UTC()
			if err := f.db.Create(&order.Order{OrderID: id, UserID: "u1", ProductID: f.product, Quantity: 1,
				AmountCents: 250, Status: order.StatusPaid, CreatedAt: now, UpdatedAt: now}).Error; err != nil {
				t.Fatal(err)
			}
			got = f.do(t, http.MethodGet, "/api/v1/orders/"+id, "")
			if got.status != http.StatusOK || got.body["status"] != "paid" || got.body["created_at"] == nil || got.body["updated_at"] == nil {
				t.Errorf("GET persisted order = %d %v, want 200 paid with timestamps", got.status, got.body)
			}

			// The created event reached the broker (outbox mode: it is in the outbox).
			sent := 0
			for _, m := range f.srv.Messages(events.TopicOrder) {
				if m.Tags == events.TagCreated && m.Keys == id {
					sent++
				}
			}
			inOutbox := f.rdb.XLen(t.Context(), f.stream).Val()
			switch mode {
			case intake.ModeOutbox:
				if sent != 0 || inOutbox != 1 {
					t.Errorf("outbox mode: %d messages, %d outbox entries; want 0, 1", sent, inOutbox)
				}
			default:
				// Sent before the 202 and its entry deleted; the replay sends nothing.
				if sent != 1 || inOutbox != 0 {
					t.Errorf("%s mode: %d messages, %d outbox entries; want 1, 0", mode, sent, inOutbox)
				}
			}

			// The second unit sells out the product: SOLDOUT{true} is broadcast,
			// and the next attempt is rejected by the local flag.
			if got := f.post(t, `{"user_id":"u2","product_id":"`+f.product+`","quantity":1}`); got.status != http.StatusAccepted {
				t.Fatalf("POST last unit = %d %v, want 202", got.status, got.body)
			}
			if got := f.post(t, `{"user_id":"u3","product_id":"`+f.product+`","quantity":1}`); got.status != http.StatusConflict || got.body["error"] != "sold_out" {
				t.Errorf("POST after sell-out = %d %v, want 409 sold_out", got.status, got.body)
			}
			if n := len(f.srv.Messages(events.TopicSoldOut)); n != 1 {
				t.Errorf("SOLDOUT messages = %d, want 1", n)
			}
		})
	}
}

func TestGetUnknown(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 1)
	for _, id := range []string{"nope", strings.Repeat("z", 65), "a%20b"} {
		if got := f.do(t, http.MethodGet, "/api/v1/orders/"+id, ""); got.status != http.StatusNotFound {
			t.Errorf("GET /api/v1/orders/%s = %d %v, want 404", id, got.status, got.body)
		}
	}
}

// TestCreateConcurrentNeverOversells drives the HTTP API with more buyers
// than units.
func TestCreateConcurrentNeverOversells(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 20)
	const buyers = 200
	codes := make(chan int, buyers)
	for i := range buyers {
		go func() {
			req := httptest.NewRequest(http.MethodPost, "/api/v1/orders",
				strings.NewReader(fmt.Sprintf(`{"user_id":"u%d","product_id":"%s","quantity":1}`, i, f.product)))
			w := httptest.NewRecorder()
			f.h.ServeHTTP(w, req)
			codes <- w.Code
		}()
	}
	count := map[int]int{}
	for range buyers {
		count[<-codes]++
	}
	if count[202] != 20 || count[409] != buyers-20 {
		t.Errorf("status counts = %v, want 20×202 and %d×409", count, buyers-20)
	}
	if n := f.rdb.Get(t.Context(), events.StockKey(f.product)).Val(); n != "0" {
		t.Errorf("stock = %s, want 0", n)
	}
}

// After Redis lost its data, a product that exists is never answered 404:
// 503 stock_rebuilding with a Retry-After until inventory-service has put it
// back, whether only its stock is missing (being rebuilt) or everything is
// (the loaded marker is gone too). Only with the marker back is a product
// without info unknown.
func TestCreateWhileStockRebuilding(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 5)
	ctx := t.Context()
	body := `{"user_id":"u1","product_id":"` + f.product + `","quantity":1}`
	unknown := `{"user_id":"u1","product_id":"nope-` + f.product + `","quantity":1}`
	steps := []struct {
		name       string
		change     func()
		body       string
		wantStatus int
		wantCode   string
	}{
		{"stock being rebuilt", func() { f.rdb.Del(ctx, events.StockKey(f.product)) }, body, 503, "stock_rebuilding"},
		{"redis restarted empty", func() { f.rdb.Del(ctx, events.InfoKey(f.product), f.loaded) }, body, 503, "stock_rebuilding"},
		{"any product while nothing is loaded", func() {}, unknown, 503, "stock_rebuilding"},
		{"info back, stock not yet", func() {
			f.rdb.HSet(ctx, events.InfoKey(f.product), "price", 250, "limit", 2)
			f.rdb.Set(ctx, f.loaded, testenv.RunID(t, f.rdb), time.Hour)
		}, body, 503, "stock_rebuilding"},
		{"unknown product once loaded", func() {}, unknown, 404, "unknown_product"},
		{"stock rebuilt", func() { f.rdb.Set(ctx, events.StockKey(f.product), 5, time.Hour) }, body, 202, ""},
	}
	for _, st := range steps {
		st.change()
		got := f.post(t, st.body)
		if got.status != st.wantStatus || (st.wantCode != "" && got.body["error"] != st.wantCode) {
			t.Fatalf("%s: POST = %d %v, want %d %s", st.name, got.status, got.body, st.wantStatus, st.wantCode)
		}
		if ra := got.header.Get("Retry-After"); (st.wantStatus == 503) != (ra != "") {
			t.Errorf("%s: Retry-After = %q on a %d", st.name, ra, got.status)
		}
	}
	if n, _ := f.rdb.Get(ctx, events.StockKey(f.product)).Int(); n != 4 {
		t.Errorf("stock after one accepted order = %d, want 4", n)
	}
}

// TestCreateBackPressure: while the oldest order in the outbox has waited
// longer than the bound (30 s here) for the broker, intake takes no order:
// 503 unavailable with a Retry-After, nothing reserved; once the outbox
// moves again, orders are taken.
func TestCreateBackPressure(t *testing.T) {
	f := setup(t, intake.ModeOutbox, 10)
	ctx := t.Context()
	old := fmt.Sprintf("%d-0", time.Now().Add(-31*time.Second).UnixMilli())
	if err := f.rdb.XAdd(ctx, &redis.XAddArgs{Stream: f.stream, ID: old, Values: []any{"order_id", "stuck"}}).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.monitor.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	body := `{"user_id":"u1","product_id":"` + f.product + `","quantity":1}`
	got := f.post(t, body, "Idempotency-Key", testenv.Unique(t, "k"))
	if got.status != http.StatusServiceUnavailable || got.body["error"] != "unavailable" || got.header.Get("Retry-After") == "" {
		t.Fatalf("POST with the outbox 31 s behind = %d %v (Retry-After %q), want 503 unavailable with a Retry-After",
			got.status, got.body, got.header.Get("Retry-After"))
	}
	if left := f.rdb.Get(ctx, events.StockKey(f.product)).Val(); left != "10" {
		t.Errorf("stock after the refusal = %s, want 10 (nothing reserved)", left)
	}
	if err := f.rdb.XDel(ctx, f.stream, old).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.monitor.Sample(ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.post(t, body); got.status != http.StatusAccepted {
		t.Errorf("POST once the outbox moved = %d %v, want 202", got.status, got.body)
	}
}
