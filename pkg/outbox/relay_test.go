package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"seckill/pkg/mq"
	"seckill/pkg/outbox"
	"seckill/pkg/testbroker"
	"seckill/pkg/testenv"
)

type env struct {
	db       *gorm.DB
	srv      *testbroker.Server
	producer *mq.Producer
}

func newEnv(t *testing.T) env {
	t.Helper()
	gdb := testenv.MariaDB(t, outbox.Migrations)
	srv := testbroker.Start(t)
	srv.CreateTopic("T", 4)
	p, err := mq.NewProducer(t.Context(), mq.Config{NameServers: []string{srv.NameSrvAddr()}}, "PID-outbox",
		slog.New(slog.DiscardHandler), mq.NewMetrics(prometheus.NewRegistry(), "test"))
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return env{db: gdb, srv: srv, producer: p}
}

func (e env) relay(t *testing.T, mode string) (*outbox.Relay, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return outbox.NewRelay(e.db, e.producer, "test", outbox.Options{Mode: mode, Batch: 16, MaxBackoff: 50 * time.Millisecond},
		slog.New(slog.DiscardHandler), reg), reg
}

func msg(i int) mq.Outgoing {
	key := fmt.Sprintf("k%03d", i)
	return mq.Outgoing{Topic: "T", Tag: "tag", Keys: []string{key}, ShardingKey: key, Body: []byte("body-" + key)}
}

// add commits n messages (k<from>..) in one transaction per call of commit.
func (e env) add(t *testing.T, from, n int) {
	t.Helper()
	ms := make([]mq.Outgoing, n)
	for i := range ms {
		ms[i] = msg(from + i)
	}
	if err := e.db.Transaction(func(tx *gorm.DB) error { return outbox.Add(tx, ms...) }); err != nil {
		t.Fatalf("Add: %v", err)
	}
}

// stored returns how often each key is in the broker's topic T.
func (e env) stored(t *testing.T) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range e.srv.Messages("T") {
		got[m.Keys]++
		if string(m.Body) != "body-"+m.Keys {
			t.Errorf("message %s body = %q, want body-%s", m.Keys, m.Body, m.Keys)
		}
	}
	return got
}

func (e env) rows(t *testing.T) int64 {
	t.Helper()
	var n int64
	if err := e.db.Table("outbox_messages").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// A committed row reaches the broker once and leaves the table; a rolled
// back one never does.
func TestRelaySendsCommittedRowsOnce(t *testing.T) {
	for _, mode := range []string{outbox.ModeBatch, outbox.ModeAsync} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.add(t, 0, 40)
			errRollback := errors.New("rolled back")
			err := e.db.Transaction(func(tx *gorm.DB) error {
				if err := outbox.Add(tx, msg(999)); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				t.Fatalf("rolled back transaction error = %v", err)
			}
			r, reg := e.relay(t, mode)
			total := 0
			for range 10 {
				n, err := r.Pass(t.Context())
				if err != nil {
					t.Fatalf("Pass() error = %v", err)
				}
				if n == 0 {
					break
				}
				total += n
			}
			if total != 40 {
				t.Errorf("relayed %d rows, want 40", total)
			}
			got := e.stored(t)
			for i := range 40 {
				if k := fmt.Sprintf("k%03d", i); got[k] != 1 {
					t.Errorf("message %s stored %d times, want 1", k, got[k])
				}
			}
			if got["k999"] != 0 {
				t.Errorf("rolled back message stored %d times, want 0", got["k999"])
			}
			if n := e.rows(t); n != 0 {
				t.Errorf("outbox rows after relaying = %d, want 0", n)
			}
			if n := testenv.Counter(t, reg, "test_db_outbox_relayed_total", map[string]string{"result": "sent"}); n != 40 {
				t.Errorf("test_db_outbox_relayed_total{sent} = %v, want 40", n)
			}
		})
	}
}

// While the broker refuses sends the rows stay (and the failure is counted);
// once it takes them again every row goes out, none lost.
func TestRelayKeepsRowsWhileTheBrokerRefuses(t *testing.T) {
	for _, mode := range []string{outbox.ModeBatch, outbox.ModeAsync} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			r, reg := e.relay(t, mode)
			e.add(t, 0, 1)
			if _, err := r.Pass(t.Context()); err != nil { // learn the route first
				t.Fatal(err)
			}
			e.srv.RefuseSends(true)
			e.add(t, 1, 10)
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if n, err := r.Pass(ctx); err == nil || n != 0 {
				t.Fatalf("Pass() while refused = %d, %v; want 0 and an error", n, err)
			}
			if n := e.rows(t); n != 10 {
				t.Fatalf("outbox rows while refused = %d, want 10", n)
			}
			if n := testenv.Counter(t, reg, "test_db_outbox_relayed_total", map[string]string{"result": "failed"}); n < 1 {
				t.Errorf("test_db_outbox_relayed_total{failed} = %v, want > 0", n)
			}
			e.srv.RefuseSends(false)
			runCtx, stop := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- r.Run(runCtx) }()
			testenv.Poll(t, 20*time.Second, "outbox relayed", func() error {
				if n := e.rows(t); n != 0 {
					return fmt.Errorf("%d rows left", n)
				}
				return nil
			})
			stop()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v", err)
			}
			got := e.stored(t)
			for i := range 11 {
				if k := fmt.Sprintf("k%03d", i); got[k] < 1 {
					t.Errorf("message %s never stored", k)
				}
			}
		})
	}
}

// Relays of several replicas share the table: one leads at a time, each row
// goes out once.
func TestRelaysShareTheTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.add(t, 0, 200)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		r, _ := e.relay(t, outbox.ModeBatch)
		wg.Go(func() {
			if err := r.Run(ctx); err != nil {
				t.Errorf("Run() = %v", err)
			}
		})
	}
	testenv.Poll(t, 20*time.Second, "outbox relayed", func() error {
		if n := e.rows(t); n != 0 {
			return fmt.Errorf("%d rows left", n)
		}
		return nil
	})
	e.add(t, 200, 20) // after a quiet moment, still once each
	testenv.Poll(t, 20*time.Second, "outbox relayed", func() error {
		if n := e.rows(t); n != 0 {
			return fmt.Errorf("%d rows left", n)
		}
		return nil
	})
	stop()
	wg.Wait()
	got := e.stored(t)
	for i := range 220 {
		if k := fmt.Sprintf("k%03d", i); got[k] != 1 {
			t.Errorf("message %s stored %d times, want 1", k, got[k])
		}
	}
}

// A delayed row keeps its delay level (a batch send would drop it).
func TestRelayKeepsDelays(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := msg(1)
	m.DelayLevel = 3
	if err := e.db.Transaction(func(tx *gorm.DB) error { return outbox.Add(tx, m, msg(2)) }); err != nil {
		t.Fatal(err)
	}
	r, _ := e.relay(t, outbox.ModeBatch)
	if n, err := r.Pass(t.Context()); err != nil || n != 2 {
		t.Fatalf("Pass() = %d, %v; want 2, nil", n, err)
	}
	if n := e.srv.PendingDelayed(); n != 1 {
		t.Errorf("delayed messages waiting in the broker = %d, want 1", n)
	}
	if got := e.stored(t); got["k002"] != 1 || got["k001"] != 0 {
		t.Errorf("stored now = %v, want k002 only (k001 waits for its delay)", got)
	}
}
