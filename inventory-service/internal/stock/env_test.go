package stock_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"gorm.io/gorm"

	"seckill/inventory-service/internal/stock"
	"seckill/inventory-service/migrations"
	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
	"seckill/pkg/outbox"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

// env is one test's inventory-service: a fresh database, the shared Redis
// (keys under unique product and order IDs), and an embedded broker.
type env struct {
	gdb      *gorm.DB
	rdb      *redis.Client
	broker   *testbroker.Server
	mqCfg    mq.Config
	mqm      *mq.Metrics
	producer *mq.Producer
	store    *stock.Store
	reserver *stock.Reserver
	ledger   *stock.Ledger
	sales    *stock.Sales
	metrics  *stock.Metrics
	reg      *prometheus.Registry // stock's and pkg/mq's metrics
	log      *slog.Logger
	relay    *outbox.Relay
	relaying sync.Once
}

// startRelay runs the outbox relay until the test ends.
func (e *env) startRelay(t *testing.T) {
	e.relaying.Do(func() {
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.relay.Run(ctx) }()
		t.Cleanup(func() { stop(); <-done })
	})
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, testenv.Redis(t))
}

// newEnvOn is newEnv on the Redis rdb (e.g. a private server the test
// restarts).
func newEnvOn(t *testing.T, rdb *redis.Client) *env {
	t.Helper()
	e := &env{
		gdb:    testenv.MariaDB(t, dedup.Migrations, outbox.Migrations, migrations.FS),
		rdb:    rdb,
		broker: testbroker.Start(t, func(o *testbroker.Options) { o.DelayScale = 0.01 }),
		log:    slog.New(slog.NewJSONHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	e.broker.CreateTopic(events.TopicOrder, 4)
	e.broker.CreateTopic(events.TopicSoldOut, 1)
	e.broker.CreateTopic(events.TopicStockLedger, 1)
	reg := prometheus.NewRegistry()
	e.mqm = mq.NewMetrics(reg, "inventory")
	e.mqCfg = mq.Config{NameServers: []string{e.broker.NameSrvAddr()}, InstanceName: testenv.Unique(t, "i")}
	p, err := mq.NewProducer(t.Context(), e.mqCfg, testenv.Unique(t, "PID"), e.log, e.mqm)
	if err != nil {
		t.Fatalf("NewProducer() error = %v", err)
	}
	t.Cleanup(func() { p.Close() })
	e.producer = p
	m := stock.NewMetrics(reg)
	e.metrics, e.reg = m, reg
	// The events a decision writes reach the broker through the outbox
	// relay, as in the service, once a test starts it (startRelay): until
	// then ORDER stays empty, and a stock rebuild's wait for GID-inventory
	// has nothing to wait for.
	e.relay = outbox.NewRelay(e.gdb, p, "inventory", outbox.Options{Poll: 20 * time.Millisecond}, e.log, reg)
	e.store = stock.NewStore(e.gdb, e.relay)
	e.reserver = stock.NewReserver(e.store, e.rdb, p, m, e.log)
	e.ledger = stock.NewLedger(e.store, m, e.log)
	e.sales = stock.NewSales(e.store, e.rdb, p, m, e.log)
	return e
}

// product starts a sale of a fresh product and deletes its Redis keys at the end.
func (e *env) product(t *testing.T, stockN, limit int) string {
	t.Helper()
	id := testenv.Unique(t, "p")
	t.Cleanup(func() { e.rdb.Del(context.Background(), productKeys(id)...) })
	if _, err := e.sales.Put(t.Context(), id, stock.Sale{Name: "t", PriceCents: 100, Stock: stockN, PerUserLimit: limit}); err != nil {
		t.Fatalf("Put(%s) error = %v", id, err)
	}
	return id
}

// productKeys are every Redis key of a product: the shared ones and
// inventory-service's stock generation and rebuild lock.
func productKeys(id string) []string {
	return []string{events.StockKey(id), events.InfoKey(id), events.UsersKey(id), "sk:{" + id + "}:gen", "sk:{" + id + "}:rebuild"}
}

// order is one accepted order as order-service would have reserved it.
type order struct {
	id, user, product string
	qty               int
	createdAt         time.Time
}

func (e *env) newOrder(t *testing.T, product, user string, qty int) order {
	t.Helper()
	o := order{id: testenv.Unique(t, "o"), user: user, product: product, qty: qty, createdAt: time.Now().UTC()}
	t.Cleanup(func() {
		e.rdb.Del(context.Background(), "sk:dedup:inventory.giveback:"+events.EventID(o.id, events.TagClosed))
	})
	return o
}

// reserve does to Redis what order-service's intake script does.
func (e *env) reserve(t *testing.T, o order) {
	t.Helper()
	ctx := t.Context()
	if err := e.rdb.DecrBy(ctx, events.StockKey(o.product), int64(o.qty)).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.rdb.HIncrBy(ctx, events.UsersKey(o.product), o.user, int64(o.qty)).Err(); err != nil {
		t.Fatal(err)
	}
}

func createdMsg(t *testing.T, msgID string, o order) mq.Message {
	t.Helper()
	return msg(t, msgID, events.TagCreated, events.Created(events.OrderCreated{
		OrderID: o.id, UserID: o.user, ProductID: o.product, Quantity: o.qty, AmountCents: 100,
		CreatedAt: o.createdAt, PayDeadline: o.createdAt.Add(time.Minute),
	}))
}

func closedMsg(t *testing.T, msgID string, o order) mq.Message {
	t.Helper()
	return msg(t, msgID, events.TagClosed, events.OrderClosed{
		Version: events.Version, EventID: events.EventID(o.id, events.TagClosed), OrderID: o.id,
		ProductID: o.product, Quantity: o.qty, Reason: "pay_timeout", ClosedAt: time.Now().UTC(),
	})
}

func msg(t *testing.T, msgID, tag string, body any) mq.Message {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	return mq.Message{ID: msgID, Topic: events.TopicOrder, Tag: tag, Body: b, BornAt: time.Now()}
}

func (e *env) dbProduct(t *testing.T, id string) stock.Product {
	t.Helper()
	p, err := e.store.Product(t.Context(), id)
	if err != nil {
		t.Fatalf("Product(%s) error = %v", id, err)
	}
	return p
}

func (e *env) redisInt(t *testing.T, key string) int {
	t.Helper()
	n, err := e.rdb.Get(t.Context(), key).Int()
	if err != nil {
		t.Fatalf("GET %s error = %v", key, err)
	}
	return n
}

func (e *env) userCount(t *testing.T, product, user string) int {
	t.Helper()
	n, err := e.rdb.HGet(t.Context(), events.UsersKey(product), user).Int()
	if err == redis.Nil {
		return 0
	}
	if err != nil {
		t.Fatalf("HGET %s %s error = %v", events.UsersKey(product), user, err)
	}
	return n
}

func (e *env) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.gdb.WithContext(t.Context()).Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s error = %v", query, err)
	}
	return n
}

// eventually polls cond until it holds or a generous deadline passes; what is
// asserted is the final state, never how long it took.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened; last state: %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sent decodes the messages the broker holds on topic.
func sent[T any](t *testing.T, b *testbroker.Server, topic string) []T {
	t.Helper()
	var out []T
	for _, m := range b.Messages(topic) {
		var v T
		if err := json.Unmarshal(m.Body, &v); err != nil {
			t.Fatalf("decode %s message %s: %v", topic, m.MsgID, err)
		}
		out = append(out, v)
	}
	return out
}

// relayed waits until the outbox is empty and the broker holds at least n
// messages on the ORDER and STOCK_LEDGER topics together.
func (e *env) relayed(t *testing.T, n int) {
	t.Helper()
	e.startRelay(t)
	testenv.Eventually(t, 30*time.Second, "outbox relayed", func() bool {
		var left int64
		e.gdb.Table("outbox_messages").Count(&left)
		return left == 0 && len(e.broker.Messages(events.TopicOrder))+len(e.broker.Messages(events.TopicStockLedger)) >= n
	})
}

// orderEvents lists the tags of the ORDER messages the broker holds for an order.
func (e *env) orderEvents(t *testing.T, orderID string) []string {
	t.Helper()
	var tags []string
	for _, m := range e.broker.Messages(events.TopicOrder) {
		if m.Keys == orderID {
			tags = append(tags, m.Tags)
		}
	}
	return tags
}
