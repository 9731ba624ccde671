package testbroker

// Behavior: the optional data directory (Options.DataDir).
//
// Messages go to the commit log (segment.go). Everything else a restart
// needs is appended to one log, DataDir/broker.log: topic configs and
// deletions, committed consumer offsets, the end of a delay or a
// transaction, and, after each rewrite, which delayed messages and
// transactions are still pending. The file starts with an 8-byte magic;
// every record is
//
//	u32 BE payload length | u32 BE CRC-32C(payload) | payload
//
// and a payload is a kind byte followed by that kind's fields (see the rec*
// constants).
//
// Durability: records are buffered while a request is handled and written
// to the files (the OS page cache) before its response is sent, the commit
// log first, so a killed broker *process* loses nothing it acknowledged.
// Nothing is fsynced unless Options.SyncEveryWrite, so a machine crash or
// power loss may lose the last writes. Pull-carried offset commits are
// written before a pull is held, and a held pull that an append answers is
// sent only after that append's record is written.
//
// On start broker.log is replayed, then the segments in commit-log order
// (replaySegments). A record of broker.log that is cut short, fails its
// checksum or has an impossible length ends its replay: the file is
// truncated there with a Warn log line (a torn tail after a crash) and the
// broker starts with what came before it. A message belongs to its queue
// unless its topic was deleted after it (a tombstone in broker.log); a
// scheduled message or transaction half is pending unless its end was
// logged. The retention bounds then apply (store.go), segments nobody
// refers to are removed, and broker.log is rewritten to the replayed state
// (temp file + rename); while running it is rewritten the same way in the
// background whenever it has doubled since the last rewrite (compact.go).
// Transaction check counts are not logged (a restart checks halves again
// from zero). A delayed message whose delivery record was cut off by the
// torn tail is delivered again (at least once, like a producer retry).
//
// A data dir written by the earlier format (one log holding the messages
// too, magic version 1) is imported at start: its messages are written to
// segments and the log rewritten in this format.

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

const (
	logFileName = "broker.log"
	logMagic    = "TBLOG\x00\x00\x02"
	// logMagicV1 is the earlier format: messages in broker.log (legacy.go).
	logMagicV1 = "TBLOG\x00\x00\x01"

	recTopic         = 1 // str name | u32 read | u32 write | u32 perm
	recTopicDelete   = 2 // str name | i64 next commit-log offset at the deletion (v1: str name)
	recMessage       = 3 // u8 flags | i64 due unix ms (0 = not scheduled) | wire (commit log; v1: broker.log)
	recDelayDone     = 4 // i64 commitLogOffset of the scheduled message
	recHalfDone      = 5 // i64 commitLogOffset of the half message
	recOffset        = 6 // str group | str topic | u32 queue | i64 offset
	recNextCommitLog = 7 // i64 next commit-log offset
	recTombstone     = 8 // str name | i64 offset: the topic's messages below it were deleted
	// recWatermark (i64 offset) starts the pending list of a rewrite:
	// scheduled messages and halves below offset are done unless a
	// recPendingDelay / recPendingHalf (i64 commitLogOffset) follows.
	recWatermark    = 9
	recPendingDelay = 10
	recPendingHalf  = 11

	// msgDetached marks a message record that is not in its queue (v1:
	// dropped by retention while pending as a delayed message or a half).
	msgDetached = 1

	recHeaderLen = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// persister owns the data dir's files. Records are added under Server.mu
// (so their order is the order of the state changes) and written by flush.
type persister struct {
	mu      sync.Mutex
	f       *os.File // broker.log
	path    string
	buf     []byte // broker.log records not yet written
	syncAll bool
	err     error // first write error; every later flush reports it

	chunks     []logChunk // commit-log records not yet written, in commit-log order
	spare      []byte     // a written chunk's buffer, for the next one
	pendingEnd int64      // commit-log offset after the last buffered record
	doomed     []*segment // segments to remove after the next write
	// written is the commit-log offset up to which records are in the
	// files; the cache keeps what lies past it (store.go evictLocked).
	written atomic.Int64

	size        int64         // bytes in f
	base        int64         // size right after the last compaction
	compactAt   int64         // Options.LogCompactMinBytes; ≤ 0: only at start
	compactWake chan struct{} // asks compactLoop for a rewrite
}

// logChunk is buffered commit-log records of one segment.
type logChunk struct {
	seg *segment
	b   []byte
}

// record frames one broker.log record into p.buf; fill appends the payload
// after the kind byte.
func (p *persister) record(kind byte, fill func(b []byte) []byte) {
	p.mu.Lock()
	p.buf = appendRecord(p.buf, kind, fill)
	p.mu.Unlock()
}

// appendRecord frames one record onto b.
func appendRecord(b []byte, kind byte, fill func(b []byte) []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, recHeaderLen)...)
	b = append(b, kind)
	b = fill(b)
	payload := b[start+recHeaderLen:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

// message buffers m's commit-log record in seg.
func (p *persister) message(seg *segment, m *message, flags byte, due int64) {
	p.mu.Lock()
	n := len(p.chunks)
	if n == 0 || p.chunks[n-1].seg != seg {
		p.chunks = append(p.chunks, logChunk{seg: seg, b: p.spare})
		p.spare = nil
		n++
	}
	c := &p.chunks[n-1]
	c.b = appendRecord(c.b, recMessage, func(b []byte) []byte { return appendMessageRecord(b, m, flags, due) })
	p.pendingEnd = m.commitLogOffset + recordLen(len(m.wire))
	p.mu.Unlock()
}

// fail makes every later flush report err (nothing is acknowledged).
func (p *persister) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// doom removes seg's file after the next write.
func (p *persister) doom(seg *segment) {
	p.mu.Lock()
	p.doomed = append(p.doomed, seg)
	p.mu.Unlock()
}

// flush writes the buffered records to the files (and fsyncs with
// SyncEveryWrite). Concurrent requests share one write.
func (p *persister) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *persister) flushLocked() error {
	if p.err != nil || len(p.buf) == 0 && len(p.chunks) == 0 && len(p.doomed) == 0 {
		return p.err
	}
	// The commit log first: a broker.log record may refer to a message
	// (a delay's end), never the other way round.
	for i := range p.chunks {
		c := &p.chunks[i]
		if _, err := c.seg.f.Write(c.b); err != nil {
			p.err = fmt.Errorf("write %s: %w", c.seg.path, err)
			return p.err
		}
	}
	if len(p.buf) > 0 && p.f != nil { // nil only while the data dir opens
		n, err := p.f.Write(p.buf)
		p.size += int64(n)
		if err != nil {
			p.err = fmt.Errorf("write %s: %w", p.path, err)
			return p.err
		}
	}
	if p.syncAll {
		for i, c := range p.chunks {
			if i > 0 && p.chunks[i-1].seg == c.seg {
				continue
			}
			if err := c.seg.f.Sync(); err != nil {
				p.err = fmt.Errorf("sync %s: %w", c.seg.path, err)
				return p.err
			}
		}
		if len(p.buf) > 0 && p.f != nil {
			if err := p.f.Sync(); err != nil {
				p.err = fmt.Errorf("sync %s: %w", p.path, err)
				return p.err
			}
		}
	}
	if len(p.chunks) > 0 {
		p.written.Store(p.pendingEnd)
	}
	// Keep one buffer of each kind unless a big batch grew it.
	if n := len(p.chunks); n > 0 && cap(p.chunks[n-1].b) <= 4<<20 {
		p.spare = p.chunks[n-1].b[:0]
	}
	clear(p.chunks)
	p.chunks = p.chunks[:0]
	if cap(p.buf) > 4<<20 {
		p.buf = nil
	} else {
		p.buf = p.buf[:0]
	}
	for _, seg := range p.doomed {
		seg.remove()
	}
	clear(p.doomed)
	p.doomed = p.doomed[:0]
	if p.needsCompactionLocked() {
		select {
		case p.compactWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// needsCompactionLocked reports whether broker.log has reached compactAt and
// doubled since the last compaction.
func (p *persister) needsCompactionLocked() bool {
	return p.compactAt > 0 && p.size >= p.compactAt && p.size >= 2*p.base
}

func (p *persister) close() error {
	err := p.flush()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	return err
}

func appendStr(b []byte, s string) []byte {
	s = s[:min(len(s), 0xFFFF)]
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (r *byteReader) str() string { return string(r.bytes(int(r.u16()))) }

func (r *byteReader) u8() uint8 {
	if v := r.bytes(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *byteReader) u64() uint64 {
	if v := r.bytes(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// --- hooks called with Server.mu held; no-ops in memory mode ---

func (s *Server) logTopicLocked(t *topic) {
	if s.persist == nil {
		return
	}
	s.persist.record(recTopic, func(b []byte) []byte { return appendTopicRecord(b, t.name, t.readQueues, t.writeQueues, t.perm) })
}

func appendTopicRecord(b []byte, name string, read, write, perm int) []byte {
	b = appendStr(b, name)
	b = binary.BigEndian.AppendUint32(b, uint32(read))
	b = binary.BigEndian.AppendUint32(b, uint32(write))
	return binary.BigEndian.AppendUint32(b, uint32(perm))
}

func (s *Server) logTopicDeleteLocked(name string, below int64) {
	if s.persist == nil {
		return
	}
	s.persist.record(recTopicDelete, func(b []byte) []byte { return appendTombstone(b, name, below) })
}

func appendTombstone(b []byte, name string, below int64) []byte {
	return binary.BigEndian.AppendUint64(appendStr(b, name), uint64(below))
}

// logMessageLocked is the append hook (Server.onAppend).
func (s *Server) logMessageLocked(seg *segment, m *message) {
	s.persist.message(seg, m, 0, m.dueMs)
}

func appendMessageRecord(b []byte, m *message, flags byte, due int64) []byte {
	b = append(b, flags)
	b = binary.BigEndian.AppendUint64(b, uint64(due))
	return append(b, m.wire...)
}

func (s *Server) logDoneLocked(kind byte, commitLogOffset int64) {
	if s.persist == nil {
		return
	}
	s.persist.record(kind, func(b []byte) []byte { return binary.BigEndian.AppendUint64(b, uint64(commitLogOffset)) })
}

func (s *Server) logOffsetLocked(k offsetKey, off int64) {
	if s.persist == nil {
		return
	}
	s.persist.record(recOffset, func(b []byte) []byte { return appendOffsetRecord(b, k, off) })
}

func appendOffsetRecord(b []byte, k offsetKey, off int64) []byte {
	b = appendStr(b, k.group)
	b = appendStr(b, k.topic)
	b = binary.BigEndian.AppendUint32(b, uint32(k.queue))
	return binary.BigEndian.AppendUint64(b, uint64(off))
}

// flushLog writes buffered records, then sends the answers of the pulls
// the logged changes released (deliverReady). A failure is logged here and
// reported to the caller, whose response says so (sends answer
// SYSTEM_ERROR).
func (s *Server) flushLog() error {
	if err := s.writeLog(); err != nil {
		return err
	}
	s.deliverReady(nil, nil)
	return nil
}

// writeLog writes buffered records (nothing in memory mode).
func (s *Server) writeLog() error {
	if s.persist == nil {
		return nil
	}
	err := s.persist.flush()
	if err != nil {
		s.log.Error("data dir write failed", "err", err)
	}
	return err
}

// --- open and replay (compaction: compact.go) ---

// openDataDir replays DataDir into s (before any goroutine runs), imports a
// log in the earlier format, rewrites broker.log compacted and leaves the
// files open for appends.
func (s *Server) openDataDir() error {
	dir := s.opts.DataDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, logFileName)
	st := newReplayState()
	legacy, err := s.replayFile(path, st)
	if err != nil {
		return err
	}
	if err := s.replaySegments(st); err != nil {
		return err
	}
	s.finishReplay(st)
	p := &persister{path: path, syncAll: s.opts.SyncEveryWrite, compactAt: s.opts.LogCompactMinBytes,
		compactWake: make(chan struct{}, 1)}
	p.written.Store(s.nextCommitLog)
	s.persist, s.onAppend = p, s.logMessageLocked
	if legacy != nil {
		if err := s.importLegacy(legacy); err != nil {
			return err
		}
	}
	p.buf = p.buf[:0] // topic records of the import: the rewrite holds that state
	if err := s.compact(path); err != nil {
		return err
	}
	if p.f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	fi, err := p.f.Stat()
	if err != nil {
		p.f.Close()
		return fmt.Errorf("stat %s: %w", path, err)
	}
	p.size, p.base = fi.Size(), fi.Size()
	return nil
}

// replayState collects what replay learns beyond the queues.
type replayState struct {
	records                 int
	doneDelay, doneHalf     map[int64]bool
	watermark               int64 // of the last rewrite: below it only the listed ones are pending
	listedDelay, listedHalf map[int64]bool
	delayed                 map[int64]delayed
	halves                  map[int64]*message
}

func newReplayState() *replayState {
	return &replayState{doneDelay: map[int64]bool{}, doneHalf: map[int64]bool{},
		listedDelay: map[int64]bool{}, listedHalf: map[int64]bool{},
		delayed: map[int64]delayed{}, halves: map[int64]*message{}}
}

// pending reports whether the scheduled message (or, with half, the half
// message) at clo still waits.
func (st *replayState) pending(clo int64, half bool) bool {
	done, listed := st.doneDelay, st.listedDelay
	if half {
		done, listed = st.doneHalf, st.listedHalf
	}
	return !done[clo] && (clo >= st.watermark || listed[clo])
}

// recordReader reads framed records.
type recordReader struct {
	r         *bufio.Reader
	maxRecord int
	hdr       [recHeaderLen]byte
}

func newRecordReader(r io.Reader, maxRecord int) *recordReader {
	return &recordReader{r: bufio.NewReaderSize(r, 1<<20), maxRecord: maxRecord}
}

// next returns the next record's payload, or nil and why it stopped ("" at
// a clean end of the input).
func (rr *recordReader) next() ([]byte, string) {
	if _, err := io.ReadFull(rr.r, rr.hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ""
		}
		return nil, "record header cut short"
	}
	n := int(binary.BigEndian.Uint32(rr.hdr[:4]))
	if n < 1 || n > rr.maxRecord {
		return nil, fmt.Sprintf("impossible record length %d", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(rr.r, payload); err != nil {
		return nil, "record cut short"
	}
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(rr.hdr[4:]) {
		return nil, "checksum mismatch"
	}
	return payload, ""
}

// replayFile replays broker.log. It returns the state of a log in the
// earlier format, to import once the files are open.
func (s *Server) replayFile(path string, st *replayState) (*legacyState, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	magic := make([]byte, len(logMagic))
	if n, err := io.ReadFull(f, magic); err != nil {
		if n == 0 || string(magic[:n]) == logMagic[:n] {
			// Empty or torn while being created: start afresh.
			s.log.Warn("data dir log has no complete header; starting empty", "path", path, "bytes", n)
			return nil, f.Truncate(0)
		}
	}
	var legacy *legacyState
	switch string(magic) {
	case logMagic:
	case logMagicV1:
		legacy = newLegacyState()
	default:
		return nil, fmt.Errorf("%s is not a testbroker log (bad magic)", path)
	}
	good := int64(len(logMagic))
	rr := newRecordReader(f, s.opts.MaxFrame+1<<16)
	var reason string
	for {
		payload, why := rr.next()
		if payload == nil {
			reason = why
			break
		}
		if legacy != nil {
			err = s.replayLegacyRecord(legacy, payload)
		} else {
			err = s.replayRecord(st, payload)
		}
		if err != nil {
			reason = err.Error()
			break
		}
		st.records++
		good += int64(recHeaderLen + len(payload))
	}
	if reason != "" {
		size, _ := f.Seek(0, io.SeekEnd)
		s.log.Warn("data dir log has a torn or corrupt tail; truncating it",
			"path", path, "reason", reason, "kept_bytes", good, "dropped_bytes", size-good)
		if err := f.Truncate(good); err != nil {
			return nil, fmt.Errorf("truncate %s: %w", path, err)
		}
	}
	return legacy, nil
}

func (s *Server) replayRecord(st *replayState, payload []byte) error {
	r := byteReader{b: payload[1:]}
	switch payload[0] {
	case recTopic:
		return s.replayTopicRecord(&r)
	case recTopicDelete, recTombstone:
		name := r.str()
		below := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed topic delete record")
		}
		if payload[0] == recTopicDelete {
			s.deleteTopicLocked(name)
		}
		s.tombstones[name] = max(s.tombstones[name], below)
	case recDelayDone, recHalfDone, recPendingDelay, recPendingHalf, recWatermark:
		clo := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed done record")
		}
		switch payload[0] {
		case recDelayDone:
			st.doneDelay[clo] = true
		case recHalfDone:
			st.doneHalf[clo] = true
		case recPendingDelay:
			st.listedDelay[clo] = true
		case recPendingHalf:
			st.listedHalf[clo] = true
		case recWatermark:
			st.watermark = clo
			clear(st.doneDelay)
			clear(st.doneHalf)
			clear(st.listedDelay)
			clear(st.listedHalf)
		}
	case recOffset:
		return s.replayOffsetRecord(&r)
	case recNextCommitLog:
		return s.replayNextCommitLogRecord(&r)
	default:
		return fmt.Errorf("unknown record kind %d", payload[0])
	}
	return nil
}

func (s *Server) replayTopicRecord(r *byteReader) error {
	name := r.str()
	read, write, perm := int(r.u32()), int(r.u32()), int(r.u32())
	if r.err != nil || read > 1<<16 || write > 1<<16 {
		return errors.New("malformed topic record")
	}
	t := s.ensureTopicLocked(name, max(read, write), perm)
	s.resizeTopicLocked(t, read, write)
	t.perm = perm
	return nil
}

// replayNextCommitLogRecord raises the next commit-log offset to the
// record's (both log formats write it the same way).
func (s *Server) replayNextCommitLogRecord(r *byteReader) error {
	n := int64(r.u64())
	if r.err != nil {
		return errors.New("malformed commit-log record")
	}
	s.nextCommitLog = max(s.nextCommitLog, n)
	return nil
}

func (s *Server) replayOffsetRecord(r *byteReader) error {
	k := offsetKey{group: r.str(), topic: r.str(), queue: int(r.u32())}
	off := int64(r.u64())
	if r.err != nil {
		return errors.New("malformed offset record")
	}
	s.offsets[k] = off
	return nil
}

// replayMessage adds the message w (its record in seg) to its queue, and to
// the pending delayed messages or transactions when it is one.
func (s *Server) replayMessage(st *replayState, seg *segment, w []byte, flags byte, due int64) error {
	h, err := peekStored(w)
	if err != nil {
		return err
	}
	if below, ok := s.tombstones[h.topic]; ok && h.clo < below {
		return nil // its topic was deleted after it
	}
	t := s.topics[h.topic]
	if t == nil {
		t = s.ensureTopicLocked(h.topic, max(s.autoQueues(h.topic), int(h.queueID)+1), permRW)
	}
	for int(h.queueID) >= len(t.queues) {
		t.queues = append(t.queues, newQueue(t.name, len(t.queues)))
	}
	q := t.queues[h.queueID]
	if flags&msgDetached == 0 {
		switch {
		case h.queueOffset == q.max():
		case h.queueOffset > q.max() || len(q.idx) == 0:
			// A gap (its predecessors' segments are gone): the queue
			// restarts at this message.
			s.dropLocked(q, len(q.idx))
			q.min, q.cacheFrom = h.queueOffset, h.queueOffset
		default:
			flags |= msgDetached // an older copy; keep it only for pending state
		}
	}
	if flags&msgDetached == 0 {
		q.idx = append(q.idx, entry{clo: h.clo, storeMs: h.storeMs, size: uint32(len(w)), tag: s.internTagLocked(h.tags)})
		q.bytes += len(w)
		q.cacheFrom = q.max()
		seg.refs++
	}
	switch {
	case h.topic == scheduleTopic && due > 0 && st.pending(h.clo, false):
		m, err := decodeStored(slices.Clone(w))
		if err != nil {
			return err
		}
		m.dueMs = due
		st.delayed[h.clo] = delayed{due: time.UnixMilli(due), msg: m}
		seg.refs++
	case h.topic == halfTopic && st.pending(h.clo, true):
		m, err := decodeStored(slices.Clone(w))
		if err != nil {
			return err
		}
		st.halves[h.clo] = m
		seg.refs++
	}
	return nil
}

// finishReplay builds the delay heap and the open transactions, applies
// the retention bounds and removes the segments nobody refers to.
func (s *Server) finishReplay(st *replayState) {
	now := s.now()
	for _, d := range st.delayed {
		s.delayed = append(s.delayed, d)
	}
	heap.Init(&s.delayed)
	for clo, m := range st.halves {
		s.halves[clo] = &halfMessage{msg: m, group: m.props["PGROUP"], nextCheck: now.Add(s.opts.TxCheckTimeout)}
	}
	messages := 0
	for _, t := range s.topics {
		for _, q := range t.queues {
			s.trimLocked(q, 0, 0)
			messages += len(q.idx)
		}
	}
	for _, seg := range slices.Clone(s.segs) {
		if seg.refs <= 0 && seg.end != math.MaxInt64 {
			s.dropSegmentLocked(seg)
		}
	}
	s.log.Info("data dir replayed", "dir", s.opts.DataDir, "records", st.records, "segments", len(s.segs),
		"messages", messages, "topics", len(s.topics), "delayed", len(st.delayed),
		"open_transactions", len(st.halves), "offsets", len(s.offsets))
}

// storedHeader is what replay needs of a stored message.
type storedHeader struct {
	topic       string
	queueID     int32
	queueOffset int64
	clo         int64
	storeMs     int64
	tags        string
}

// peekStored reads the header fields of a message in the pull-body layout
// and its TAGS property, without decoding the rest.
func peekStored(b []byte) (storedHeader, error) {
	var h storedHeader
	r := byteReader{b: b}
	size := int(r.u32())
	if r.err != nil || size != len(b) {
		return h, fmt.Errorf("stored message size %d, record holds %d bytes", size, len(b))
	}
	if r.u32() != messageMagicV1 {
		return h, errors.New("stored message has a bad magic")
	}
	r.skip(4) // body crc
	h.queueID = int32(r.u32())
	r.skip(4) // flag
	h.queueOffset = int64(r.u64())
	h.clo = int64(r.u64())
	r.skip(4 + 8 + 8) // sysflag, born timestamp, born host
	h.storeMs = int64(r.u64())
	r.skip(8 + 4 + 8) // store host, reconsume times, prepared tx offset
	r.skip(int(int32(r.u32())))
	h.topic = string(r.bytes(int(r.u8())))
	props := r.bytes(int(r.u16()))
	if r.err != nil || len(r.b) != 0 || h.queueID < 0 || h.topic == "" {
		return h, errors.New("malformed stored message")
	}
	h.tags = propertyValue(props, propTags)
	return h, nil
}

// propertyValue finds key in an encoded properties string.
func propertyValue(props []byte, key string) string {
	for len(props) > 0 {
		item := props
		if i := slices.Index(props, 2); i >= 0 {
			item, props = props[:i], props[i+1:]
		} else {
			props = nil
		}
		if k, v, ok := cutByte(item, 1); ok && string(k) == key {
			return string(v)
		}
	}
	return ""
}

func cutByte(b []byte, sep byte) (before, after []byte, found bool) {
	if i := slices.Index(b, sep); i >= 0 {
		return b[:i], b[i+1:], true
	}
	return b, nil, false
}

// decodeStored parses one message in the pull-body layout written by seal.
// The message's body and wire alias b.
func decodeStored(b []byte) (*message, error) {
	r := byteReader{b: b}
	size := int(r.u32())
	if r.err != nil || size != len(b) {
		return nil, fmt.Errorf("stored message size %d, record holds %d bytes", size, len(b))
	}
	if r.u32() != messageMagicV1 {
		return nil, errors.New("stored message has a bad magic")
	}
	m := &message{wire: b}
	r.skip(4) // body crc
	m.queueID = int32(r.u32())
	m.flag = int32(r.u32())
	m.queueOffset = int64(r.u64())
	m.commitLogOffset = int64(r.u64())
	m.sysFlag = int32(r.u32())
	m.bornTimestamp = int64(r.u64())
	copy(m.bornHost.ip[:], r.bytes(4))
	m.bornHost.port = int32(r.u32())
	m.storeTimestamp = int64(r.u64())
	copy(m.storeHost.ip[:], r.bytes(4))
	m.storeHost.port = int32(r.u32())
	m.reconsumeTimes = int32(r.u32())
	m.preparedTxOff = int64(r.u64())
	body := r.bytes(int(int32(r.u32())))
	m.body = body[:len(body):len(body)]
	m.topic = string(r.bytes(int(r.u8())))
	m.props = parseProperties(string(r.bytes(int(r.u16()))))
	if r.err != nil || len(r.b) != 0 || m.queueID < 0 || m.topic == "" {
		return nil, errors.New("malformed stored message")
	}
	return m, nil
}
