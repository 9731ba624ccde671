package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"seckill/inventory-service/internal/httpapi"
	"seckill/inventory-service/internal/stock"
	"seckill/inventory-service/migrations"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/httpx"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

const token = "s3cret-admin-token"

type server struct {
	h      *gin.Engine
	rdb    *redis.Client
	store  *stock.Store
	broker *testbroker.Server
	logs   *bytes.Buffer
}

func newServer(t *testing.T) *server {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations, outbox.Migrations, migrations.FS)
	rdb := testenv.Redis(t)
	b := testbroker.Start(t)
	b.CreateTopic(events.TopicSoldOut, 1)
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	reg := prometheus.NewRegistry()
	mqm := mq.NewMetrics(reg, "inventory")
	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{b.NameSrvAddr()}}, testenv.Unique(t, "PID"), log, mqm)
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	t.Cleanup(func() { p.Close() })
	store := stock.NewStore(gdb, nopRelay{})
	m := stock.NewMetrics(reg)
	e := httpx.NewEngine(log, reg, "inventory")
	httpapi.New(stock.NewSales(store, rdb, p, m, log), token, log).Register(e)
	return &server{h: e, rdb: rdb, store: store, broker: b, logs: logs}
}

type nopRelay struct{}

func (nopRelay) Notify() {}

func (s *server) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.h.ServeHTTP(w, req)
	var out map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
		t.Fatalf("%s %s answered non-JSON %q: %v", method, path, w.Body.String(), err)
	}
	return w.Code, out
}

func productID(t *testing.T, rdb *redis.Client) string {
	t.Helper()
	id := testenv.Unique(t, "p")
	t.Cleanup(func() {
		rdb.Del(context.Background(), events.StockKey(id), events.InfoKey(id), events.UsersKey(id))
	})
	return id
}

const goodBody = `{"name":"phone","price_cents":999,"stock":100,"per_user_limit":2}`

func TestAdminTokenRequired(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := productID(t, s.rdb)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic " + token, "bearer " + token, "Bearer " + token + "x", token} {
		code, body := s.do(t, http.MethodPut, "/api/v1/products/"+id, auth, goodBody)
		if code != http.StatusUnauthorized || body["error"] != "unauthorized" {
			t.Errorf("PUT with Authorization %q = %d %v, want 401 unauthorized", auth, code, body)
		}
	}
	if code, _ := s.do(t, http.MethodGet, "/api/v1/products/"+id, "", ""); code != http.StatusNotFound {
		t.Errorf("GET after refused PUTs = %d, want 404 (nothing created)", code)
	}
	if strings.Contains(s.logs.String(), token) {
		t.Errorf("logs contain the admin token:\n%s", s.logs)
	}
}

func TestPutBadRequest(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	id := productID(t, s.rdb)
	tests := []struct {
		name, path, body, field string
	}{
		{"malformed JSON", "", `{"name":`, ""},
		{"empty body", "", ``, ""},
		{"two values", "", goodBody + goodBody, ""},
		{"missing name", "", `{"price_cents":1,"stock":1,"per_user_limit":1}`, "name"},
		{"empty name", "", `{"name":"","price_cents":1,"stock":1,"per_user_limit":1}`, "name"},
		{"long name", "", `{"name":"` + strings.Repeat("x", 201) + `","price_cents":1,"stock":1,"per_user_limit":1}`, "name"},
		{"control char in name", "", `{"name":"a\u0000b","price_cents":1,"stock":1,"per_user_limit":1}`, "name"},
		{"missing price", "", `{"name":"a","stock":1,"per_user_limit":1}`, "price_cents"},
		{"negative price", "", `{"name":"a","price_cents":-1,"stock":1,"per_user_limit":1}`, "price_cents"},
		{"fractional price", "", `{"name":"a","price_cents":1.5,"stock":1,"per_user_limit":1}`, "price_cents"},
		{"missing stock", "", `{"name":"a","price_cents":1,"per_user_limit":1}`, "stock"},
		{"negative stock", "", `{"name":"a","price_cents":1,"stock":-1,"per_user_limit":1}`, "stock"},
		{"stock too big", "", `{"name":"a","price_cents":1,"stock":10000001,"per_user_limit":1}`, "stock"},
		{"huge stock", "", `{"name":"a","price_cents":1,"stock":1e30,"per_user_limit":1}`, "stock"},
		{"stock as string", "", `{"name":"a","price_cents":1,"stock":"5","per_user_limit":1}`, "stock"},
		{"limit zero", "", `{"name":"a","price_cents":1,"stock":1,"per_user_limit":0}`, "per_user_limit"},
		{"missing limit", "", `{"name":"a","price_cents":1,"stock":1}`, "per_user_limit"},
		{"unknown field", "", `{"name":"a","price_cents":1,"stock":1,"per_user_limit":1,"color":"red"}`, "color"},
		{"long product id", "/api/v1/products/" + strings.Repeat("p", 65), goodBody, "product_id"},
		{"space in product id", "/api/v1/products/a%20b", goodBody, "product_id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/api/v1/products/" + id
			}
			code, body := s.do(t, http.MethodPut, path, "Bearer "+token, tc.body)
			msg, _ := body["message"].(string)
			if code != http.StatusBadRequest || body["error"] != "invalid_request" || !strings.HasPrefix(msg, tc.field) {
				t.Errorf("PUT %s = %d %v, want 400 invalid_request naming %q", tc.body, code, body, tc.field)
			}
		})
	}
	if code, _ := s.do(t, http.MethodGet, "/api/v1/products/"+id, "", ""); code != http.StatusNotFound {
		t.Errorf("GET after bad PUTs = %d, want 404", code)
	}
}

func TestPutThenGet(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ctx := t.Context()
	id := productID(t, s.rdb)
	// Left over from an earlier sale: a reset must clear it.
	s.rdb.HSet(ctx, events.UsersKey(id), "u1", 2)

	code, body := s.do(t, http.MethodPut, "/api/v1/products/"+id, "Bearer "+token, goodBody)
	if code != http.StatusOK || body["product_id"] != id || body["stock"] != 100.0 || body["available"] != 100.0 ||
		body["sold"] != 0.0 || body["per_user_limit"] != 2.0 || body["price_cents"] != 999.0 || body["name"] != "phone" {
		t.Fatalf("PUT = %d %v, want 200 with the product", code, body)
	}
	code, body = s.do(t, http.MethodGet, "/api/v1/products/"+id, "", "")
	if code != http.StatusOK || body["stock"] != 100.0 || body["available"] != 100.0 || body["sold"] != 0.0 || body["per_user_limit"] != 2.0 {
		t.Fatalf("GET = %d %v, want 200 stock 100 available 100 sold 0 limit 2", code, body)
	}
	if n, err := s.rdb.Get(ctx, events.StockKey(id)).Int(); err != nil || n != 100 {
		t.Errorf("redis %s = %d (%v), want 100", events.StockKey(id), n, err)
	}
	info, err := s.rdb.HGetAll(ctx, events.InfoKey(id)).Result()
	if err != nil || info["price"] != "999" || info["limit"] != "2" {
		t.Errorf("redis %s = %v (%v), want price 999 limit 2", events.InfoKey(id), info, err)
	}
	if n, err := s.rdb.Exists(ctx, events.UsersKey(id)).Result(); err != nil || n != 0 {
		t.Errorf("redis %s exists = %d (%v), want deleted", events.UsersKey(id), n, err)
	}

	// Some units sell, then a reset starts a new sale from the new stock.
	_, err = s.store.Deduct(ctx, []stock.Deduction{{MsgID: "m1", EventID: "o1:created", OrderID: testenv.Unique(t, "o"), ProductID: id, Quantity: 5}})
	if err != nil {
		t.Fatal(err)
	}
	code, body = s.do(t, http.MethodGet, "/api/v1/products/"+id, "", "")
	if code != http.StatusOK || body["available"] != 95.0 || body["sold"] != 5.0 {
		t.Fatalf("GET after a deduction = %d %v, want available 95 sold 5", code, body)
	}
	code, body = s.do(t, http.MethodPut, "/api/v1/products/"+id, "Bearer "+token, `{"name":"phone","price_cents":999,"stock":0,"per_user_limit":1}`)
	if code != http.StatusOK || body["stock"] != 0.0 || body["sold"] != 0.0 || body["sale_id"] != 2.0 {
		t.Fatalf("PUT reset = %d %v, want stock 0 sold 0 sale 2", code, body)
	}
	if n, err := s.rdb.Get(ctx, events.StockKey(id)).Int(); err != nil || n != 0 {
		t.Errorf("redis %s after reset = %d (%v), want 0", events.StockKey(id), n, err)
	}
	// Each sale start tells the order-service replicas its sold-out state.
	var flags []bool
	for _, m := range s.broker.Messages(events.TopicSoldOut) {
		var so events.SoldOut
		if err := json.Unmarshal(m.Body, &so); err != nil {
			t.Fatal(err)
		}
		flags = append(flags, so.SoldOut)
	}
	if len(flags) != 2 || flags[0] || !flags[1] {
		t.Errorf("sold-out broadcasts = %v, want [false true]", flags)
	}
}

func TestGetUnknownProduct(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	code, body := s.do(t, http.MethodGet, "/api/v1/products/nope-"+testenv.Unique(t, "p"), "", "")
	if code != http.StatusNotFound || body["error"] != "unknown_product" {
		t.Errorf("GET unknown = %d %v, want 404 unknown_product", code, body)
	}
}
