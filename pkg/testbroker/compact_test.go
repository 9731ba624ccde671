package testbroker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// appendAcked stores body in (topicName, qid) and commits offset commit for
// group G (when ≥ 0) the way a send handler does: state change under mu,
// then the log write before the acknowledgement.
func appendAcked(srv *Server, topicName string, qid int, body string, commit int64) error {
	srv.mu.Lock()
	srv.appendLocked(srv.topics[topicName], &message{queueID: int32(qid), body: []byte(body), props: map[string]string{propKeys: body}})
	if commit >= 0 {
		srv.commitOffsetLocked("G", topicName, qid, commit)
	}
	srv.mu.Unlock()
	return srv.flushLog()
}

func logSize(t testing.TB, dir string) int64 {
	t.Helper()
	st, err := os.Stat(filepath.Join(dir, logFileName))
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// copyDataDir copies every file of dir (the log and any temp file) into a
// new directory: what a process killed at this moment leaves on disk.
func copyDataDir(dir, dst string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // a temp file renamed or dropped since the listing
		}
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func copiedDataDir(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	if err := copyDataDir(dir, dst); err != nil {
		t.Fatalf("copy data dir: %v", err)
	}
	return dst
}

// TestDataDirLogStaysBoundedWhileRunning sends far more than retention
// keeps: online compaction keeps the file within a small multiple of the
// live data, and a kill-style copy of the log taken afterwards (also with
// a torn tail) replays the same messages and offsets.
func TestDataDirLogStaysBoundedWhileRunning(t *testing.T) {
	t.Parallel()
	const (
		retain     = 100
		compactMin = 64 << 10
		total      = 30000
	)
	dir := t.TempDir()
	srv, err := Run(context.Background(), Options{DataDir: dir, RetainPerQueue: retain, LogCompactMinBytes: compactMin})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.CreateTopic("T", 2)
	var written, maxSize int64
	for i := range total {
		body := fmt.Sprintf("message %06d %0100d", i, i)
		written += int64(len(body))
		if err := appendAcked(srv, "T", i%2, body, int64(i/2)); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if i%5 == 4 {
			maxSize = max(maxSize, logSize(t, dir))
			time.Sleep(time.Millisecond) // ≤ 5 000 msg/s, the rate the latency benchmark sends
		}
	}
	// live: the log rewritten at start from a copy holds just the live state.
	liveDir := copiedDataDir(t, dir)
	if liveSrv, err := Run(context.Background(), Options{DataDir: liveDir, RetainPerQueue: retain}); err != nil {
		t.Fatalf("Run on a copy: %v", err)
	} else {
		liveSrv.Close()
	}
	live := logSize(t, liveDir)
	// Doubling rule: at most 2 × max(compactMin, live), plus what arrives
	// while a rewrite runs, which on a loaded machine (a CI run with every
	// package's tests at once) can be a few hundred ms of traffic. So the
	// check is that the size does not grow with the amount written: an
	// uncompacted log would hold every body written and more.
	if maxSize > written/3 {
		t.Errorf("log reached %d bytes with %d bytes live, want ≤ %d (a third of the %d bytes of bodies written)", maxSize, live, written/3, written)
	}
	t.Logf("bodies written %d bytes, live %d, largest log %d", written, live, maxSize)

	wantMsgs := srv.Messages("T")
	wantOff := [2]int64{srv.ConsumerOffset("G", "T", 0), srv.ConsumerOffset("G", "T", 1)}
	check := func(t *testing.T, dir string) {
		t.Helper()
		got, err := Run(context.Background(), Options{DataDir: dir, RetainPerQueue: retain})
		if err != nil {
			t.Fatalf("Run on the copied log: %v", err)
		}
		defer got.Close()
		msgs := got.Messages("T")
		if len(msgs) != len(wantMsgs) {
			t.Fatalf("copied log replays %d messages, want %d", len(msgs), len(wantMsgs))
		}
		for i := range msgs {
			if msgs[i].MsgID != wantMsgs[i].MsgID || string(msgs[i].Body) != string(wantMsgs[i].Body) || msgs[i].QueueOffset != wantMsgs[i].QueueOffset {
				t.Fatalf("copied log message %d = %s@%d, want %s@%d", i, msgs[i].Body, msgs[i].QueueOffset, wantMsgs[i].Body, wantMsgs[i].QueueOffset)
			}
		}
		for qid, want := range wantOff {
			if off := got.ConsumerOffset("G", "T", qid); off != want {
				t.Errorf("copied log: ConsumerOffset(queue %d) = %d, want %d", qid, off, want)
			}
		}
	}
	t.Run("killed", func(t *testing.T) { check(t, copiedDataDir(t, dir)) })
	t.Run("killed with a torn tail", func(t *testing.T) {
		torn := copiedDataDir(t, dir)
		f, err := os.OpenFile(filepath.Join(torn, logFileName), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Half of a message record: its header promises more than follows.
		if _, err := f.Write(framed(recMessage, make([]byte, 300))[:100]); err != nil {
			t.Fatal(err)
		}
		f.Close()
		check(t, torn)
	})
}

// TestDataDirKilledDuringCompaction copies the data dir at every step of an
// online compaction, while a writer keeps appending and committing, and
// starts a broker on each copy: every message and offset acknowledged
// before the copy is there.
func TestDataDirKilledDuringCompaction(t *testing.T) {
	t.Parallel()
	for _, syncAll := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncEveryWrite=%v", syncAll), func(t *testing.T) {
			t.Parallel()
			testKilledDuringCompaction(t, syncAll)
		})
	}
}

func testKilledDuringCompaction(t *testing.T, syncAll bool) {
	dir := t.TempDir()
	srv, err := Run(context.Background(), Options{DataDir: dir, LogCompactMinBytes: 32 << 10, SyncEveryWrite: syncAll})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.CreateTopic("T", 1)
	copiesDir := t.TempDir()

	type killed struct {
		step  string
		dir   string
		acked int64 // messages acknowledged before the copy started
	}
	var (
		acked   atomic.Int64 // message i (offset i) is acknowledged once acked > i
		mu      sync.Mutex
		copies  []killed
		renamed = make(chan struct{})
		first   atomic.Bool
	)
	srv.mu.Lock()
	srv.onCompactStep = func(step string) {
		if first.Load() {
			return // only the first compaction
		}
		n := acked.Load()
		d := filepath.Join(copiesDir, step)
		if err := os.Mkdir(d, 0o755); errors.Is(err, os.ErrExist) {
			t.Errorf("a second compaction reached %q before the first finished: the first one failed", step)
		} else if err != nil {
			t.Error(err)
		}
		if err := copyDataDir(dir, d); err != nil {
			t.Errorf("copy data dir at %s: %v", step, err)
		}
		mu.Lock()
		copies = append(copies, killed{step: step, dir: d, acked: n})
		mu.Unlock()
		if step == "renamed" {
			first.Store(true)
			close(renamed)
		}
	}
	srv.mu.Unlock()

	writerDone := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(writerDone)
		for i := int64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Offset i is committed together with message i, so the
			// committed offset of a copy is at least its acked count.
			if err := appendAcked(srv, "T", 0, fmt.Sprintf("m%06d %080d", i, i), i+1); err != nil {
				t.Errorf("append %d: %v", i, err)
				return
			}
			acked.Store(i + 1)
		}
	}()
	select {
	case <-renamed:
	case <-time.After(60 * time.Second):
		t.Fatal("no online compaction within 60 s")
	}
	// Keep writing a little after the switch: those records go to the new file.
	time.Sleep(20 * time.Millisecond)
	close(stop)
	<-writerDone
	mu.Lock()
	copies = append(copies, killed{step: "after", dir: copiedDataDir(t, dir), acked: acked.Load()})
	steps := copies
	mu.Unlock()

	for _, k := range steps {
		t.Run(k.step, func(t *testing.T) {
			got, err := Run(context.Background(), Options{DataDir: k.dir})
			if err != nil {
				t.Fatalf("Run on the copy: %v", err)
			}
			defer got.Close()
			msgs := got.Messages("T")
			if int64(len(msgs)) < k.acked {
				t.Fatalf("copy replays %d messages, want at least the %d acknowledged", len(msgs), k.acked)
			}
			for i, m := range msgs {
				if want := fmt.Sprintf("m%06d %080d", i, i); string(m.Body) != want || m.QueueOffset != int64(i) {
					t.Fatalf("message %d = %.7s@%d, want %.7s@%d", i, m.Body, m.QueueOffset, want, i)
				}
			}
			if off := got.ConsumerOffset("G", "T", 0); off < k.acked {
				t.Errorf("committed offset %d, want at least %d", off, k.acked)
			}
			if _, err := os.Stat(filepath.Join(k.dir, logFileName+".tmp")); err == nil && k.step == "after" {
				t.Errorf("%s.tmp left behind after the compaction", logFileName)
			}
		})
	}
	// The running broker's own log replays everything too.
	want := acked.Load()
	srv.Close()
	next, err := Run(context.Background(), Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Run after Close: %v", err)
	}
	defer next.Close()
	if got := int64(len(next.Messages("T"))); got != want {
		t.Errorf("restart replays %d messages, want %d", got, want)
	}
}

// TestDataDirCompactionBeforeAFlush compacts while a record is still
// buffered (its request has unlocked but not yet flushed): the rewrite
// writes it first, and the copied log holds it.
func TestDataDirCompactionBeforeAFlush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv, err := Run(context.Background(), Options{DataDir: dir, LogCompactMinBytes: -1})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.CreateTopic("T", 1)
	for i := range 10 {
		if err := appendAcked(srv, "T", 0, fmt.Sprint("m", i), -1); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	srv.appendLocked(srv.topics["T"], &message{body: []byte("buffered"), props: map[string]string{}})
	srv.mu.Unlock()
	if _, _, _, err := srv.compactOnline(); err != nil {
		t.Fatalf("compactOnline with a buffered record: %v", err)
	}
	got, err := Run(context.Background(), Options{DataDir: copiedDataDir(t, dir)})
	if err != nil {
		t.Fatalf("Run on the copied log: %v", err)
	}
	defer got.Close()
	if ms := got.Messages("T"); len(ms) != 11 || string(ms[10].Body) != "buffered" {
		t.Errorf("copied log replays %d messages, want 11 ending with the buffered one", len(ms))
	}
}
