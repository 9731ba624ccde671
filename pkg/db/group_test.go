package db_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"seckill/pkg/db"
	"seckill/pkg/testenv"
)

func groupDB(t *testing.T) *gorm.DB {
	t.Helper()
	gdb := testenv.MariaDB(t)
	if err := gdb.Exec("CREATE TABLE rows_ (id VARCHAR(32) PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	return gdb
}

func insert(id string) func(tx *gorm.DB) error {
	return func(tx *gorm.DB) error { return tx.Exec("INSERT INTO rows_ (id) VALUES (?)", id).Error }
}

func ids(t *testing.T, gdb *gorm.DB) map[string]bool {
	t.Helper()
	var got []string
	if err := gdb.Raw("SELECT id FROM rows_").Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, id := range got {
		m[id] = true
	}
	return m
}

// TestGroupCommitsConcurrentCallersTogether: 40 concurrent callers each
// commit their row, and they share transactions.
func TestGroupCommitsConcurrentCallersTogether(t *testing.T) {
	gdb := groupDB(t)
	g := db.NewGroup(gdb, 16, 5*time.Millisecond)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Go(func() { errs[i] = g.Transaction(t.Context(), insert(fmt.Sprint(i))) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Transaction %d error = %v, want nil", i, err)
		}
	}
	if got := len(ids(t, gdb)); got != 40 {
		t.Errorf("%d rows, want 40", got)
	}
	st := g.Stats()
	if st.Calls != 40 || st.Commits == 0 || st.Fallbacks != 0 {
		t.Errorf("Stats() = %+v, want 40 calls in shared commits, no fallback", st)
	}
}

// TestGroupIsolatesFailures: a failing, a duplicate and a panicking caller in
// a group get their own outcome; the others commit.
func TestGroupIsolatesFailures(t *testing.T) {
	gdb := groupDB(t)
	if err := gdb.Exec("INSERT INTO rows_ (id) VALUES ('dup')").Error; err != nil {
		t.Fatal(err)
	}
	g := db.NewGroup(gdb, 16, 20*time.Millisecond)
	errBoom := errors.New("boom")
	type result struct {
		err      error
		panicked any
	}
	calls := map[string]func(tx *gorm.DB) error{
		"ok1": insert("ok1"),
		"ok2": insert("ok2"),
		"dup": insert("dup"),
		"fail": func(tx *gorm.DB) error {
			if err := insert("fail")(tx); err != nil {
				return err
			}
			return errBoom
		},
		"panic": func(tx *gorm.DB) error {
			if err := insert("panic")(tx); err != nil {
				return err
			}
			panic("handler bug")
		},
		"ok3": insert("ok3"),
	}
	var (
		mu      sync.Mutex
		results = map[string]result{}
		wg      sync.WaitGroup
	)
	for name, fn := range calls {
		wg.Go(func() {
			var r result
			func() {
				defer func() { r.panicked = recover() }()
				r.err = g.Transaction(context.Background(), fn)
			}()
			mu.Lock()
			results[name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, name := range []string{"ok1", "ok2", "ok3"} {
		if r := results[name]; r.err != nil || r.panicked != nil {
			t.Errorf("%s: %+v, want nil", name, r)
		}
	}
	if r := results["dup"]; !errors.Is(r.err, gorm.ErrDuplicatedKey) && (r.err == nil || !strings.Contains(r.err.Error(), "Duplicate")) {
		t.Errorf("dup: error = %v, want a duplicate key error", r.err)
	}
	if r := results["fail"]; !errors.Is(r.err, errBoom) {
		t.Errorf("fail: error = %v, want %v", r.err, errBoom)
	}
	if r := results["panic"]; r.panicked == nil || !strings.Contains(fmt.Sprint(r.panicked), "handler bug") {
		t.Errorf("panic: recovered %v, want the handler's panic", r.panicked)
	}
	want := map[string]bool{"dup": true, "ok1": true, "ok2": true, "ok3": true}
	if got := ids(t, gdb); len(got) != len(want) || !got["ok1"] || !got["ok2"] || !got["ok3"] || got["fail"] || got["panic"] {
		t.Errorf("rows = %v, want %v", got, want)
	}
	if st := g.Stats(); st.Fallbacks == 0 {
		t.Errorf("Stats() = %+v, want a fallback", st)
	}
}

// TestGroupOfOneIsAPlainTransaction: max 1 never groups.
func TestGroupOfOneIsAPlainTransaction(t *testing.T) {
	gdb := groupDB(t)
	g := db.NewGroup(gdb, 1, time.Second)
	start := time.Now()
	if err := g.Transaction(t.Context(), insert("a")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("Transaction took %s, want no linger", d)
	}
	if st := g.Stats(); st != (db.GroupStats{}) {
		t.Errorf("Stats() = %+v, want zero (not grouped)", st)
	}
}

// TestGroupHandsOverUnderSteadyLoad: while callers keep arriving, each one
// still returns after its own group (the one that ran a group hands the
// next to a waiting caller instead of running every group that follows),
// and callers that give up never leave the others waiting.
func TestGroupHandsOverUnderSteadyLoad(t *testing.T) {
	gdb := groupDB(t)
	g := db.NewGroup(gdb, 4, time.Millisecond)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	var (
		mu      sync.Mutex
		slowest time.Duration
		wg      sync.WaitGroup
		n       int
	)
	stop := time.Now().Add(2 * time.Second)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				ctx := t.Context()
				if i%5 == 4 {
					ctx = cancelled
				}
				start := time.Now()
				err := g.Transaction(ctx, insert(fmt.Sprintf("%d-%d", w, i)))
				d := time.Since(start)
				if ctx == cancelled {
					continue
				}
				if err != nil {
					t.Errorf("Transaction: %v", err)
					return
				}
				mu.Lock()
				slowest, n = max(slowest, d), n+1
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if slowest > time.Second {
		t.Errorf("slowest of %d calls under steady load took %s, want well under the 2 s of load", n, slowest)
	}
	if err := g.Transaction(t.Context(), insert("after")); err != nil {
		t.Errorf("Transaction after the load: %v", err)
	}
}
