package testbroker

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// dataDirSize is the bytes of every file in dir.
func dataDirSize(t *testing.T, dir string) int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// TestDataDirSegments: a backlog a group has not consumed stays on disk,
// in segment files, with only the newest encodings in memory; once the
// group commits past it, retention drops it and the segments go; a restart
// replays what is left.
func TestDataDirSegments(t *testing.T) {
	t.Parallel()
	const (
		retain  = 50
		total   = 2000
		segSize = 16 << 10
		cache   = 2 << 10
	)
	dir := t.TempDir()
	opts := Options{DataDir: dir, RetainPerQueue: retain, SegmentBytes: segSize, CacheBytesPerQueue: cache}
	srv, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.CreateTopic("T", 2)
	srv.mu.Lock()
	srv.offsets[offsetKey{"G", "T", 0}] = 0 // a group that has consumed nothing
	srv.offsets[offsetKey{"G", "T", 1}] = 0
	srv.mu.Unlock()
	for i := range total {
		if err := appendAcked(srv, "T", i%2, fmt.Sprintf("message %05d %0100d", i, i), -1); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	for qid, q := range srv.topics["T"].queues {
		if n := len(q.idx); n != total/2 {
			t.Errorf("queue %d indexes %d messages with the group at 0, want all %d", qid, n, total/2)
		}
		if q.cacheBytes > cache+512 {
			t.Errorf("queue %d caches %d bytes, want ≤ %d", qid, q.cacheBytes, cache)
		}
	}
	srv.mu.Unlock()
	full := dataDirSize(t, dir)
	if segs := countSegments(t, dir); segs < total*100/segSize {
		t.Errorf("%d segments for %d messages of ~150 bytes in %d-byte segments", segs, total, segSize)
	}
	// Reads go to the segments.
	if got := srv.Messages("T"); len(got) != total || string(got[0].Body) != fmt.Sprintf("message %05d %0100d", 0, 0) {
		t.Fatalf("Messages = %d messages, want %d starting with message 0", len(got), total)
	}

	// The group consumes all but the last 100 of each queue.
	srv.mu.Lock()
	srv.commitOffsetLocked("G", "T", 0, total/2-100)
	srv.commitOffsetLocked("G", "T", 1, total/2-100)
	srv.mu.Unlock()
	if err := appendAcked(srv, "T", 0, "after", -1); err != nil { // an append trims
		t.Fatal(err)
	}
	if err := appendAcked(srv, "T", 1, "after", -1); err != nil {
		t.Fatal(err)
	}
	if min := srv.MinOffset("T", 0); min != total/2-100 {
		t.Errorf("min offset after the commit = %d, want %d (retention %d, but the group needs the last 100)", min, total/2-100, retain)
	}
	left := dataDirSize(t, dir)
	if left > full/4 {
		t.Errorf("data dir holds %d bytes after the group consumed 90%% of %d bytes, want the segments gone", left, full)
	}
	t.Logf("data dir %d bytes with the backlog, %d after it was consumed; %d segments left", full, left, countSegments(t, dir))

	want := srv.Messages("T")
	srv = restart(t, srv, opts)
	got := srv.Messages("T")
	if len(got) != len(want) {
		t.Fatalf("restart replays %d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].MsgID != want[i].MsgID || string(got[i].Body) != string(want[i].Body) || got[i].QueueOffset != want[i].QueueOffset {
			t.Fatalf("message %d after restart = %s@%d, want %s@%d", i, got[i].Body, got[i].QueueOffset, want[i].Body, want[i].QueueOffset)
		}
	}
}

// TestDataDirTornSegment: a segment cut short or with garbage after its
// last record is truncated there at start; every complete record stays,
// and appends go on at the right offsets.
func TestDataDirTornSegment(t *testing.T) {
	t.Parallel()
	tails := map[string]func(seg []byte) []byte{
		"garbage":        func(seg []byte) []byte { return append(seg, 0, 0, 0, 40, 1, 2, 3, 4, recMessage, 9) },
		"half a record":  func(seg []byte) []byte { return append(seg, seg[len(seg)-60:len(seg)-20]...) },
		"cut last one":   func(seg []byte) []byte { return seg[:len(seg)-7] },
		"half a header":  func(seg []byte) []byte { return append(seg, 0, 0, 1) },
		"zeroed tail":    func(seg []byte) []byte { return append(seg, make([]byte, 64)...) },
		"wrong position": func(seg []byte) []byte { return append(seg, seg[:recordOverhead+40]...) },
	}
	for name, tail := range tails {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			srv, err := Run(context.Background(), Options{DataDir: dir})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			srv.CreateTopic("T", 1)
			for i := range 20 {
				if err := appendAcked(srv, "T", 0, fmt.Sprint("m", i), -1); err != nil {
					t.Fatal(err)
				}
			}
			srv.Close()
			starts, err := segmentFiles(dir)
			if err != nil || len(starts) != 1 {
				t.Fatalf("segments %v (%v), want one", starts, err)
			}
			path := segmentPath(dir, starts[0])
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			torn := tail(data)
			if err := os.WriteFile(path, torn, 0o644); err != nil {
				t.Fatal(err)
			}
			wantKept := 20
			if len(torn) < len(data) {
				wantKept = 19
			}
			var logs lockedBuffer
			srv, err = Run(context.Background(), Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("Run on a torn segment: %v", err)
			}
			defer srv.Close()
			if got := len(srv.Messages("T")); got != wantKept {
				t.Errorf("kept %d messages, want %d", got, wantKept)
			}
			if !strings.Contains(logs.String(), "segment has a torn or corrupt tail") {
				t.Errorf("no truncation log line in:\n%s", logs.String())
			}
			if err := appendAcked(srv, "T", 0, "after", -1); err != nil {
				t.Fatal(err)
			}
			srv.Close()
			logs.Reset()
			srv, err = Run(context.Background(), Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatalf("second Run: %v", err)
			}
			defer srv.Close()
			ms := srv.Messages("T")
			if len(ms) != wantKept+1 || string(ms[wantKept].Body) != "after" || ms[wantKept].QueueOffset != int64(wantKept) {
				t.Errorf("after a second restart: %d messages, last %+v; want %d ending with \"after\"", len(ms), ms[len(ms)-1], wantKept+1)
			}
			if strings.Contains(logs.String(), "torn") {
				t.Errorf("second start still found a torn tail:\n%s", logs.String())
			}
		})
	}
}

// TestDataDirPendingSurvivesRewrite: broker.log rewritten while one delayed
// message is delivered and one still pending: a restart delivers the
// pending one once and not the other again.
func TestDataDirPendingSurvivesRewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{DataDir: dir, LogCompactMinBytes: -1}
	srv, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	srv.CreateTopic("T", 1)
	put := func(body string, level int) {
		srv.mu.Lock()
		srv.putLocked(srv.topics["T"], &message{body: []byte(body), props: map[string]string{propDelay: fmt.Sprint(level)}})
		srv.mu.Unlock()
		if err := srv.flushLog(); err != nil {
			t.Fatal(err)
		}
	}
	put("soon", 1)  // 1 s
	put("later", 5) // 1 min
	waitFor(t, 10*time.Second, "the first delay to end", func() bool { return len(srv.Messages("T")) == 1 })
	if _, _, _, err := srv.compactOnline(); err != nil {
		t.Fatalf("compactOnline: %v", err)
	}
	for i := range 3 { // records after the rewrite
		if err := appendAcked(srv, "T", 0, fmt.Sprint("plain", i), -1); err != nil {
			t.Fatal(err)
		}
	}
	srv = restart(t, srv, opts)
	if n := srv.PendingDelayed(); n != 1 {
		t.Errorf("PendingDelayed after the restart = %d, want 1 (\"later\")", n)
	}
	if ms := srv.Messages("T"); len(ms) != 4 || string(ms[0].Body) != "soon" {
		t.Errorf("topic after the restart holds %d messages, want \"soon\" once and 3 more", len(ms))
	}
}

// TestDataDirImportsEarlierFormat: a data dir whose broker.log holds the
// messages (magic version 1) starts with every retained message, offset,
// pending delayed message and topic, and is rewritten in this format.
func TestDataDirImportsEarlierFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var clo int64
	v1 := []byte(logMagicV1)
	rec := func(kind byte, fill func([]byte) []byte) { v1 = appendRecord(v1, kind, fill) }
	msg := func(topicName string, qid int32, qoff int64, body string, props map[string]string, flags byte, due int64) int64 {
		m := &message{topic: topicName, queueID: qid, queueOffset: qoff, commitLogOffset: clo,
			storeTimestamp: 1700000000000 + qoff, body: []byte(body), props: props}
		m.seal()
		rec(recMessage, func(b []byte) []byte { return appendMessageRecord(b, m, flags, due) })
		at := clo
		clo += int64(len(m.wire))
		return at
	}
	rec(recTopic, func(b []byte) []byte { return appendTopicRecord(b, "T", 2, 2, permRW) })
	rec(recTopic, func(b []byte) []byte { return appendTopicRecord(b, "GONE", 1, 1, permRW) })
	for i := range 6 { // queue 1 starts at 3: its first messages were dropped
		msg("T", 1, int64(3+i), fmt.Sprint("t1-", 3+i), map[string]string{propTags: "a"}, 0, 0)
	}
	msg("T", 0, 0, "t0-0", map[string]string{}, 0, 0)
	msg("GONE", 0, 0, "gone", map[string]string{}, 0, 0)
	rec(recTopicDelete, func(b []byte) []byte { return appendStr(b, "GONE") })
	due := time.Now().Add(time.Hour).UnixMilli()
	delayedProps := map[string]string{propDelay: "5", propRealTopic: "T", propRealQueueID: "0"}
	pending := msg(scheduleTopic, 4, 0, "pending", delayedProps, 0, due)
	done := msg(scheduleTopic, 4, 1, "delivered", delayedProps, 0, due)
	rec(recDelayDone, func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(done)) })
	msg(scheduleTopic, 4, 9, "detached", delayedProps, msgDetached, due) // dropped from its queue, pending
	rec(recOffset, func(b []byte) []byte { return appendOffsetRecord(b, offsetKey{"G", "T", 1}, 5) })
	if err := os.WriteFile(filepath.Join(dir, logFileName), v1, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = pending

	var logs lockedBuffer
	opts := Options{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	srv, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run on an earlier-format data dir: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	check := func(srv *Server) {
		t.Helper()
		ms := srv.Messages("T")
		var bodies []string
		for _, m := range ms {
			bodies = append(bodies, fmt.Sprintf("%s@%d", m.Body, m.QueueOffset))
		}
		if got, want := strings.Join(bodies, " "), "t0-0@0 t1-3@3 t1-4@4 t1-5@5 t1-6@6 t1-7@7 t1-8@8"; got != want {
			t.Errorf("topic T holds %s, want %s", got, want)
		}
		if len(ms) > 1 && ms[1].Tags != "a" {
			t.Errorf("imported message tags %q, want a", ms[1].Tags)
		}
		if off := srv.ConsumerOffset("G", "T", 1); off != 5 {
			t.Errorf("ConsumerOffset = %d, want 5", off)
		}
		if n := srv.PendingDelayed(); n != 2 {
			t.Errorf("PendingDelayed = %d, want 2 (one in its queue, one detached)", n)
		}
		for _, name := range srv.Topics() {
			if name == "GONE" {
				t.Errorf("deleted topic GONE came back")
			}
		}
	}
	check(srv)
	if !strings.Contains(logs.String(), "earlier format imported") {
		t.Errorf("no import log line in:\n%s", logs.String())
	}
	srv = restart(t, srv, opts)
	check(srv)
	head := make([]byte, len(logMagic))
	f, err := os.Open(filepath.Join(dir, logFileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(head); err != nil || string(head) != logMagic {
		t.Errorf("broker.log starts %q after the import, want the current magic", head)
	}
}
