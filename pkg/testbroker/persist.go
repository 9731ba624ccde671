package testbroker

// Behavior: the optional data directory (Options.DataDir).
//
// Everything a restart needs is appended to one log, DataDir/broker.log:
// stored messages (including delayed messages with their due time and
// transaction halves), the end of a delay or a transaction, committed
// consumer offsets and topic configs. The file starts with an 8-byte magic;
// every record is
//
//	u32 BE payload length | u32 BE CRC-32C(payload) | payload
//
// and a payload is a kind byte followed by that kind's fields (see the rec*
// constants). A message record holds the message in the pull-body layout
// (message.go), so replay needs no other encoding.
//
// Durability: records are buffered while a request is handled and written
// to the file (the OS page cache) before its response is sent, so a
// killed broker *process* loses nothing it acknowledged. Nothing is fsynced
// unless Options.SyncEveryWrite, so a machine crash or power loss may lose
// the last writes. Pull-carried offset commits are written before a pull is
// held, and a held pull that an append answers is sent only after that
// append's record is written.
//
// On start the log is replayed; a record that is cut short, fails its
// checksum or has an impossible length ends the replay: the file is
// truncated there with a Warn log line (a torn tail after a crash) and the
// broker starts with what came before it. The replayed state is then
// written to a fresh log (temp file + rename), and while running the log is
// rewritten the same way in the background whenever it has doubled since
// the last rewrite (compact.go), so disk stays bounded by retention like
// memory.
// Transaction check counts are not logged (a restart checks halves again
// from zero). A delayed message whose delivery record was cut off by the
// torn tail is delivered again (at least once, like a producer retry).

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	logFileName = "broker.log"
	logMagic    = "TBLOG\x00\x00\x01"

	recTopic         = 1 // str name | u32 read | u32 write | u32 perm
	recTopicDelete   = 2 // str name
	recMessage       = 3 // u8 flags | i64 due unix ms (0 = not scheduled) | wire
	recDelayDone     = 4 // i64 commitLogOffset of the scheduled message
	recHalfDone      = 5 // i64 commitLogOffset of the half message
	recOffset        = 6 // str group | str topic | u32 queue | i64 offset
	recNextCommitLog = 7 // i64 next commit-log offset

	// msgDetached marks a message that is no longer in its queue (dropped
	// by retention) but still pending as a delayed message or a half.
	msgDetached = 1

	recHeaderLen = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// persister owns the log file. Records are added under Server.mu (so their
// order is the order of the state changes) and written by flush.
type persister struct {
	mu      sync.Mutex
	f       *os.File
	path    string
	buf     []byte
	syncAll bool
	err     error // first write error; every later flush reports it

	size        int64         // bytes in f
	base        int64         // size right after the last compaction
	compactAt   int64         // Options.LogCompactMinBytes; ≤ 0: only at start
	compactWake chan struct{} // asks compactLoop for a rewrite
}

// record frames one record into p.buf; fill appends the payload after the
// kind byte.
func (p *persister) record(kind byte, fill func(b []byte) []byte) {
	p.mu.Lock()
	start := len(p.buf)
	p.buf = append(p.buf, make([]byte, recHeaderLen)...)
	p.buf = append(p.buf, kind)
	p.buf = fill(p.buf)
	payload := p.buf[start+recHeaderLen:]
	binary.BigEndian.PutUint32(p.buf[start:], uint32(len(payload)))
	binary.BigEndian.PutUint32(p.buf[start+4:], crc32.Checksum(payload, castagnoli))
	p.mu.Unlock()
}

// flush writes the buffered records to the file (and fsyncs with
// SyncEveryWrite). Concurrent requests share one write.
func (p *persister) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.flushLocked()
}

func (p *persister) flushLocked() error {
	if p.err != nil || len(p.buf) == 0 {
		return p.err
	}
	n, err := p.f.Write(p.buf)
	p.size += int64(n)
	if err != nil {
		p.err = fmt.Errorf("write %s: %w", p.path, err)
		return p.err
	}
	if p.syncAll {
		if err := p.f.Sync(); err != nil {
			p.err = fmt.Errorf("sync %s: %w", p.path, err)
			return p.err
		}
	}
	if cap(p.buf) > 4<<20 {
		p.buf = nil
	} else {
		p.buf = p.buf[:0]
	}
	if p.needsCompactionLocked() {
		select {
		case p.compactWake <- struct{}{}:
		default:
		}
	}
	return nil
}

// needsCompactionLocked reports whether the log has reached compactAt and
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

func (s *Server) logTopicDeleteLocked(name string) {
	if s.persist == nil {
		return
	}
	s.persist.record(recTopicDelete, func(b []byte) []byte { return appendStr(b, name) })
}

func (s *Server) logMessageLocked(m *message) {
	if s.persist == nil {
		return
	}
	s.persist.record(recMessage, func(b []byte) []byte { return appendMessageRecord(b, m, 0, m.dueMs) })
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

// openDataDir replays DataDir's log into s (before any goroutine runs),
// rewrites it compacted and leaves it open for appends.
func (s *Server) openDataDir() error {
	dir := s.opts.DataDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dir, logFileName)
	if err := s.replayFile(path); err != nil {
		return err
	}
	if err := s.compact(path); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat %s: %w", path, err)
	}
	s.persist = &persister{f: f, path: path, syncAll: s.opts.SyncEveryWrite,
		size: st.Size(), base: st.Size(), compactAt: s.opts.LogCompactMinBytes, compactWake: make(chan struct{}, 1)}
	s.onAppend = s.logMessageLocked
	return nil
}

// replayState collects what replay learns beyond the queues.
type replayState struct {
	delayed map[int64]delayed
	halves  map[int64]*message
	records int
}

func (s *Server) replayFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	magic := make([]byte, len(logMagic))
	if n, err := io.ReadFull(r, magic); err != nil {
		if n == 0 || string(magic[:n]) == logMagic[:n] {
			// Empty or torn while being created: start afresh.
			s.log.Warn("data dir log has no complete header; starting empty", "path", path, "bytes", n)
			return f.Truncate(0)
		}
	}
	if string(magic) != logMagic {
		return fmt.Errorf("%s is not a testbroker log (bad magic)", path)
	}
	st := &replayState{delayed: map[int64]delayed{}, halves: map[int64]*message{}}
	good := int64(len(logMagic))
	maxRecord := s.opts.MaxFrame + 1<<16
	var hdr [recHeaderLen]byte
	var reason string
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if !errors.Is(err, io.EOF) {
				reason = "record header cut short"
			}
			break
		}
		n := int(binary.BigEndian.Uint32(hdr[:4]))
		if n < 1 || n > maxRecord {
			reason = fmt.Sprintf("impossible record length %d", n)
			break
		}
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			reason = "record cut short"
			break
		}
		if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
			reason = "checksum mismatch"
			break
		}
		if err := s.replayRecord(st, payload); err != nil {
			reason = err.Error()
			break
		}
		st.records++
		good += int64(recHeaderLen + n)
	}
	if reason != "" {
		size, _ := f.Seek(0, io.SeekEnd)
		s.log.Warn("data dir log has a torn or corrupt tail; truncating it",
			"path", path, "reason", reason, "kept_bytes", good, "dropped_bytes", size-good)
		if err := f.Truncate(good); err != nil {
			return fmt.Errorf("truncate %s: %w", path, err)
		}
	}
	now := s.now()
	for _, d := range st.delayed {
		s.delayed = append(s.delayed, d)
	}
	heap.Init(&s.delayed)
	for clo, m := range st.halves {
		s.halves[clo] = &halfMessage{msg: m, group: m.props["PGROUP"], nextCheck: now.Add(s.opts.TxCheckTimeout)}
	}
	s.log.Info("data dir replayed", "path", path, "records", st.records, "topics", len(s.topics),
		"delayed", len(st.delayed), "open_transactions", len(st.halves), "offsets", len(s.offsets))
	return nil
}

func (s *Server) replayRecord(st *replayState, payload []byte) error {
	r := byteReader{b: payload[1:]}
	switch payload[0] {
	case recTopic:
		name := r.str()
		read, write, perm := int(r.u32()), int(r.u32()), int(r.u32())
		if r.err != nil || read > 1<<16 || write > 1<<16 {
			return errors.New("malformed topic record")
		}
		t := s.ensureTopicLocked(name, max(read, write), perm)
		s.resizeTopicLocked(t, read, write)
		t.perm = perm
	case recTopicDelete:
		name := r.str()
		if r.err != nil {
			return errors.New("malformed topic delete record")
		}
		s.deleteTopicLocked(name)
	case recMessage:
		flags := r.u8()
		due := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed message record")
		}
		m, err := decodeStored(r.b)
		if err != nil {
			return err
		}
		s.replayMessage(st, m, flags, due)
	case recDelayDone, recHalfDone:
		clo := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed done record")
		}
		delete(st.delayed, clo)
		delete(st.halves, clo)
	case recOffset:
		k := offsetKey{group: r.str(), topic: r.str(), queue: int(r.u32())}
		off := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed offset record")
		}
		s.offsets[k] = off
	case recNextCommitLog:
		n := int64(r.u64())
		if r.err != nil {
			return errors.New("malformed commit-log record")
		}
		s.nextCommitLog = max(s.nextCommitLog, n)
	default:
		return fmt.Errorf("unknown record kind %d", payload[0])
	}
	return nil
}

func (s *Server) replayMessage(st *replayState, m *message, flags byte, due int64) {
	s.nextCommitLog = max(s.nextCommitLog, m.commitLogOffset+int64(len(m.wire)))
	t := s.topics[m.topic]
	if t == nil {
		t = s.ensureTopicLocked(m.topic, max(s.autoQueues(m.topic), int(m.queueID)+1), permRW)
	}
	for int(m.queueID) >= len(t.queues) {
		t.queues = append(t.queues, newQueue())
	}
	q := t.queues[m.queueID]
	if flags&msgDetached == 0 {
		switch {
		case m.queueOffset == q.max():
		case m.queueOffset > q.max() || len(q.msgs) == 0:
			// A gap (its predecessors were compacted away): the queue
			// restarts at this message.
			for _, old := range q.msgs {
				delete(s.byCommitLog, old.commitLogOffset)
			}
			clear(q.msgs)
			q.msgs, q.bytes, q.min = q.msgs[:0], 0, m.queueOffset
		default:
			flags |= msgDetached // an older copy; keep it only for pending state
		}
	}
	if flags&msgDetached == 0 {
		q.msgs = append(q.msgs, m)
		q.bytes += len(m.wire)
		s.byCommitLog[m.commitLogOffset] = m
		s.trimLocked(q)
	}
	switch {
	case m.topic == scheduleTopic && due > 0:
		m.dueMs = due
		st.delayed[m.commitLogOffset] = delayed{due: time.UnixMilli(due), msg: m}
	case m.topic == halfTopic:
		st.halves[m.commitLogOffset] = m
	}
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
