package boot

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"

	"seckill/pkg/config"
	"seckill/pkg/httpx"
	"seckill/pkg/mq"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

// readyDeps are the dependencies of a service's /readyz, all up.
type readyDeps struct {
	gdb       *gorm.DB
	rdb       *redis.Client
	srv       *testbroker.Server
	mqCfg     mq.Config
	consumers Consumers
}

func startReadyDeps(t *testing.T) *readyDeps {
	t.Helper()
	srv := testbroker.Start(t)
	srv.CreateTopic("READY_T", 1)
	cfg := mq.Config{NameServers: []string{srv.NameSrvAddr()}}
	log := slog.New(slog.DiscardHandler)
	group := config.ConsumerGroup{GroupID: "GID-" + testenv.Unique(t, "ready"), Consumers: []config.Consumer{{Topic: "READY_T", Tag: "*", Handler: "h"}}}
	cs, err := Subscribe(t.Context(), cfg, []config.ConsumerGroup{group}, 0,
		map[string]mq.Handler{"h": func(context.Context, mq.Message) error { return nil }}, nil, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return &readyDeps{gdb: testenv.MariaDB(t), rdb: testenv.Redis(t), srv: srv, mqCfg: cfg, consumers: cs}
}

// unreachableMySQL is a pool on a port where nothing listens (gorm would
// dial it on open: the dial is left to the check).
func unreachableMySQL(t *testing.T) *gorm.DB {
	t.Helper()
	gdb, err := gorm.Open(gormmysql.New(gormmysql.Config{DSN: "root@tcp(" + testenv.FreeAddr(t) + ")/x", SkipInitializeWithVersion: true}),
		&gorm.Config{DisableAutomaticPing: true})
	if err != nil {
		t.Fatal(err)
	}
	return gdb
}

// TestReadyz: each check of a service's /readyz, broken alone, makes it
// answer 503 naming that check and only that one.
func TestReadyz(t *testing.T) {
	if testing.Short() {
		t.Skip("needs MariaDB, Redis and a broker: skipped under -short")
	}
	tests := []struct {
		name   string
		breaks func(t *testing.T, d *readyDeps)
		want   []string // not ready; none = 200
	}{
		{"all up", func(*testing.T, *readyDeps) {}, nil},
		{"mysql unreachable", func(t *testing.T, d *readyDeps) { d.gdb = unreachableMySQL(t) }, []string{"mysql"}},
		{"redis unreachable", func(t *testing.T, d *readyDeps) {
			d.rdb = redis.NewClient(&redis.Options{Addr: testenv.FreeAddr(t), MaxRetries: -1})
			t.Cleanup(func() { d.rdb.Close() })
		}, []string{"redis"}},
		{"broker gone", func(t *testing.T, d *readyDeps) {
			d.consumers.Close() // first, so closing the broker does not stall them
			d.consumers = nil
			if err := d.srv.Close(); err != nil {
				t.Fatal(err)
			}
		}, []string{"broker"}},
		{"a consumer closed", func(t *testing.T, d *readyDeps) {
			if err := d.consumers.Close(); err != nil {
				t.Fatal(err)
			}
		}, []string{"consumers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := startReadyDeps(t)
			tc.breaks(t, d)
			e := httpx.NewEngine(slog.New(slog.DiscardHandler), nil, "test")
			Ready(e, MySQLCheck(d.gdb), RedisCheck(d.rdb), BrokerCheck(d.mqCfg, "READY_T"), d.consumers.Check())
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			var body struct {
				NotReady []string          `json:"not_ready"`
				Checks   map[string]string `json:"checks"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("GET /readyz body %q: %v", rec.Body, err)
			}
			wantStatus := http.StatusOK
			if len(tc.want) > 0 {
				wantStatus = http.StatusServiceUnavailable
			}
			if rec.Code != wantStatus {
				t.Errorf("GET /readyz = %d %s, want %d", rec.Code, rec.Body, wantStatus)
			}
			if diff := cmp.Diff(tc.want, body.NotReady); diff != "" {
				t.Errorf("not_ready (-want +got):\n%s\nbody: %s", diff, rec.Body)
			}
			if len(body.Checks) != 4 {
				t.Errorf("checks = %v, want mysql, redis, broker and consumers", body.Checks)
			}
		})
	}
}
