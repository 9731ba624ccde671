package testbroker

// Behavior: compaction of broker.log (persist.go).
//
// broker.log is rewritten to the live state: topic configs, the tombstones
// of deleted topics whose older messages a segment may still hold, the next
// commit-log offset, the delayed messages and transactions still pending
// (their messages are in the segments: segment.go), and committed offsets.
// That happens at start (replay, then rewrite) and, while running, whenever
// the log has reached Options.LogCompactMinBytes and doubled since the last
// rewrite (Redis's AOF rewrite rule), so the file stays within about twice
// the live state, however long the broker runs. Messages are not in it: the
// segments bound themselves (segment.go).
//
// A rewrite while running does not stop the broker: under Server.mu it only
// copies the small maps and notes the log offset where later records start.
// A background goroutine writes that snapshot to broker.log.tmp, appends
// the records the broker logged meanwhile (copied from the old file),
// fsyncs, and then, holding only the persister's lock (flushes wait;
// handlers keep running), copies the last records and renames the new file
// over the old one. Until the rename the old log is complete and is what a
// restart replays (broker.log.tmp is ignored and overwritten); after it the
// new log holds every record that had been written, and records buffered
// meanwhile go to the new file. So a process killed at any point keeps
// every acknowledged message and committed offset. A failed rewrite is
// logged and retried once the log has doubled again.

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// logSnapshot is the live state to rewrite, captured under Server.mu.
type logSnapshot struct {
	nextCommitLog int64
	topics        []topicRecord
	tombstones    map[string]int64
	pendingDelay  []int64 // commit-log offsets of scheduled messages not yet delivered
	pendingHalf   []int64 // commit-log offsets of open transactions
	offsets       map[offsetKey]int64
}

type topicRecord struct {
	name              string
	read, write, perm int
}

// snapshotLocked captures the state a fresh log must hold. Tombstones below
// the first segment are left out: no message they hide is left.
func (s *Server) snapshotLocked() *logSnapshot {
	snap := &logSnapshot{
		nextCommitLog: s.nextCommitLog,
		tombstones:    make(map[string]int64, len(s.tombstones)),
		offsets:       make(map[offsetKey]int64, len(s.offsets)),
	}
	oldest := s.nextCommitLog
	if len(s.segs) > 0 {
		oldest = s.segs[0].start
	}
	for name, below := range s.tombstones {
		if below > oldest {
			snap.tombstones[name] = below
		} else {
			delete(s.tombstones, name)
		}
	}
	for _, t := range s.topics {
		snap.topics = append(snap.topics, topicRecord{name: t.name, read: t.readQueues, write: t.writeQueues, perm: t.perm})
	}
	for _, d := range s.delayed {
		snap.pendingDelay = append(snap.pendingDelay, d.msg.commitLogOffset)
	}
	for clo := range s.halves {
		snap.pendingHalf = append(snap.pendingHalf, clo)
	}
	for k, off := range s.offsets {
		snap.offsets[k] = off
	}
	return snap
}

// writeTo writes the log magic and the snapshot's records to w. stop is
// checked between writes; when it reports true the write is abandoned.
func (snap *logSnapshot) writeTo(w io.Writer, stop func() bool) (int64, error) {
	var b []byte
	var written int64
	put := func(force bool) error {
		if len(b) < 1<<20 && !force {
			return nil
		}
		n, err := w.Write(b)
		written += int64(n)
		b = b[:0]
		if err == nil && stop != nil && stop() {
			err = errCompactionStopped
		}
		return err
	}
	u64 := func(v int64) func([]byte) []byte {
		return func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(v)) }
	}
	b = append(b, logMagic...)
	b = appendRecord(b, recNextCommitLog, u64(snap.nextCommitLog))
	for name, below := range snap.tombstones {
		b = appendRecord(b, recTombstone, func(b []byte) []byte { return appendTombstone(b, name, below) })
	}
	for _, t := range snap.topics {
		b = appendRecord(b, recTopic, func(b []byte) []byte { return appendTopicRecord(b, t.name, t.read, t.write, t.perm) })
	}
	b = appendRecord(b, recWatermark, u64(snap.nextCommitLog))
	for _, clo := range snap.pendingDelay {
		b = appendRecord(b, recPendingDelay, u64(clo))
	}
	for _, clo := range snap.pendingHalf {
		b = appendRecord(b, recPendingHalf, u64(clo))
	}
	for k, off := range snap.offsets {
		b = appendRecord(b, recOffset, func(b []byte) []byte { return appendOffsetRecord(b, k, off) })
		if err := put(false); err != nil {
			return written, err
		}
	}
	return written, put(true)
}

var errCompactionStopped = errors.New("compaction stopped: broker closing")

// compact writes the current state to a fresh log and renames it over
// path. It runs at start, before any other goroutine.
func (s *Server) compact(path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	_, err = s.snapshotLocked().writeTo(w, nil)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// compactLoop rewrites the log whenever the persister asks, until the
// server stops.
func (s *Server) compactLoop() {
	defer s.wg.Done()
	p := s.persist
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-p.compactWake:
		}
		p.mu.Lock()
		due := p.needsCompactionLocked()
		p.mu.Unlock()
		if !due { // a wake-up left from before the last compaction
			continue
		}
		start := time.Now()
		before, after, held, err := s.compactOnline()
		switch {
		case errors.Is(err, errCompactionStopped):
			return
		case err != nil:
			s.log.Warn("data dir log compaction failed; retrying once the log doubles again", "err", err)
			p.mu.Lock()
			p.base = p.size
			p.mu.Unlock()
		default:
			s.log.Info("data dir log compacted", "path", p.path, "bytes_before", before, "bytes_after", after,
				"took", time.Since(start), "state_lock_held", held)
		}
	}
}

// compactOnline rewrites the running broker's log (see the Behavior
// comment). It returns the log sizes before and after and how long
// Server.mu was held.
func (s *Server) compactOnline() (before, after int64, held time.Duration, err error) {
	p := s.persist
	t0 := time.Now()
	s.mu.Lock()
	snap := s.snapshotLocked()
	hook := s.onCompactStep
	p.mu.Lock()
	// Every record of a state change the snapshot holds was added before
	// this point (records are added under Server.mu); every later one
	// lands in the old file at or after from.
	rw := &rewrite{path: p.path, tmpPath: p.path + ".tmp", from: p.size + int64(len(p.buf))}
	perr := p.err
	p.mu.Unlock()
	s.mu.Unlock()
	held = time.Since(t0)
	if hook == nil {
		hook = func(string) {}
	}
	if perr != nil {
		return 0, 0, held, perr
	}
	if rw.tmp, err = os.Create(rw.tmpPath); err != nil {
		return 0, 0, held, fmt.Errorf("create %s: %w", rw.tmpPath, err)
	}
	defer rw.cleanup()
	if rw.old, err = os.Open(p.path); err != nil {
		return 0, 0, held, fmt.Errorf("open %s: %w", p.path, err)
	}
	stopped := func() bool { return s.ctx.Err() != nil }
	w := bufio.NewWriterSize(rw.tmp, 1<<20)
	if rw.size, err = snap.writeTo(w, stopped); err != nil {
		return 0, 0, held, err
	}
	snap = nil
	// Catch up with the records logged meanwhile until little is left.
	for {
		p.mu.Lock()
		end := p.size
		p.mu.Unlock()
		if end-rw.from < 256<<10 {
			break
		}
		if err := rw.copyTail(w, end); err != nil {
			return 0, 0, held, err
		}
		if stopped() {
			return 0, 0, held, errCompactionStopped
		}
	}
	if err := w.Flush(); err != nil {
		return 0, 0, held, fmt.Errorf("write %s: %w", rw.tmpPath, err)
	}
	if err := rw.tmp.Sync(); err != nil {
		return 0, 0, held, fmt.Errorf("sync %s: %w", rw.tmpPath, err)
	}
	hook("synced")
	if before, err = rw.switchTo(p, hook); err != nil {
		return 0, 0, held, err
	}
	syncDir(filepath.Dir(p.path))
	return before, rw.size, held, nil
}

// rewrite is one online compaction's files.
type rewrite struct {
	path, tmpPath string
	tmp, old      *os.File // the new log being written; the old log, read
	from          int64    // the old log's offset copied up to
	size          int64    // bytes written to tmp
	renamed       bool
}

// copyTail appends the old log's bytes from rw.from to end to w.
func (rw *rewrite) copyTail(w io.Writer, end int64) error {
	n, err := io.Copy(w, io.NewSectionReader(rw.old, rw.from, end-rw.from))
	rw.size += n
	rw.from += n
	if err == nil && rw.from != end {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return fmt.Errorf("copy %s after the snapshot: %w", rw.path, err)
	}
	return nil
}

// switchTo copies the last records and renames tmp over the log, holding
// the persister's lock so no flush comes in between; later flushes append
// to tmp. It returns the old log's size.
func (rw *rewrite) switchTo(p *persister, hook func(string)) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Records buffered at the snapshot may not have reached the old file
	// yet (their request flushes after it unlocks): write them first.
	if err := p.flushLocked(); err != nil {
		return 0, err
	}
	before := p.size
	if err := rw.copyTail(rw.tmp, before); err != nil {
		return 0, err
	}
	if p.syncAll {
		if err := rw.tmp.Sync(); err != nil {
			return 0, fmt.Errorf("sync %s: %w", rw.tmpPath, err)
		}
	}
	hook("copied")
	if err := os.Rename(rw.tmpPath, rw.path); err != nil {
		return 0, fmt.Errorf("replace %s: %w", rw.path, err)
	}
	rw.renamed = true
	hook("renamed")
	p.f.Close()
	// tmp's file offset is at its end (it was only written sequentially).
	p.f, p.size, p.base = rw.tmp, rw.size, rw.size
	return before, nil
}

// cleanup closes the old log's read handle and, unless the rewrite took
// effect, drops the temp file (the old log stays the log).
func (rw *rewrite) cleanup() {
	if rw.old != nil {
		rw.old.Close()
	}
	if !rw.renamed {
		rw.tmp.Close()
		os.Remove(rw.tmpPath)
	}
}
