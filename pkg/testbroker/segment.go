package testbroker

// Behavior: the commit log of the data dir (Options.DataDir), in segment
// files.
//
// Every stored message is one record in the commit log, framed like the
// records of broker.log (persist.go):
//
//	u32 BE payload length | u32 BE CRC-32C(payload) | payload
//	payload = recMessage | u8 flags | i64 due unix ms (0 = not scheduled) | message in the pull-body layout
//
// A message's commit-log offset is the position of its record in the
// commit log, so a send-back finds a message by it as RocketMQ does. The
// log is cut into segment files DataDir/commitlog-<first offset, 20
// digits>: a record goes to a new segment when it would take the current one
// past Options.SegmentBytes. Offsets run on across segments without a gap.
//
// A segment is deleted once no index entry (store.go) and no pending delayed
// message or open transaction refers to a message in it, and a newer
// segment exists; the deletion happens after the records buffered before it
// are written. So disk, like the index, holds what retention keeps, plus
// the rest of the segments those messages share.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

const (
	segmentPrefix = "commitlog-"
	// recordOverhead is a commit-log record's bytes around the message: the
	// frame header, the kind, the flags and the due time.
	recordOverhead = recHeaderLen + 1 + 1 + 8
)

// recordLen is the commit-log length of a record holding a message whose
// encoding is size bytes.
func recordLen(size int) int64 { return int64(recordOverhead + size) }

// segment is one commit-log file.
type segment struct {
	start int64 // commit-log offset of its first record
	end   int64 // start of the next segment; math.MaxInt64 while it is the last
	path  string
	f     *os.File // read with ReadAt under Server.mu; appended to by the persister
	size  int64    // bytes of records placed in it, written or buffered; under Server.mu
	refs  int      // index entries and pending messages in it; under Server.mu
}

func segmentPath(dir string, start int64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%020d", segmentPrefix, start))
}

// segmentLocked returns the segment holding commit-log offset clo, or nil.
func (s *Server) segmentLocked(clo int64) *segment {
	i := sort.Search(len(s.segs), func(i int) bool { return s.segs[i].end > clo })
	if i == len(s.segs) || s.segs[i].start > clo {
		return nil
	}
	return s.segs[i]
}

// placeLocked gives m's record its segment (nil in memory mode), opening a
// new segment when the record would take the last one past
// Options.SegmentBytes. m.commitLogOffset is s.nextCommitLog either way.
func (s *Server) placeLocked(m *message) *segment {
	if s.persist == nil {
		return nil
	}
	n := len(s.segs)
	rec := recordLen(len(m.wire))
	if n > 0 {
		// The last segment, if this record starts where its records end
		// (after a torn tail it may not) and it has room.
		last := s.segs[n-1]
		if last.start+last.size == s.nextCommitLog && (last.size == 0 || last.size+rec <= s.opts.SegmentBytes) {
			last.size += rec
			return last
		}
	}
	seg, err := s.openSegment(s.nextCommitLog)
	if err != nil {
		// Keep writing to the last segment; the persister reports the
		// error, so nothing is acknowledged.
		s.persist.fail(err)
		if n > 0 {
			s.segs[n-1].size += rec
			return s.segs[n-1]
		}
		seg = &segment{start: s.nextCommitLog, end: math.MaxInt64}
	}
	seg.size = rec
	if n > 0 {
		prev := s.segs[n-1]
		prev.end = seg.start
		s.segs = append(s.segs, seg)
		if prev.refs == 0 {
			s.dropSegmentLocked(prev)
		}
	} else {
		s.segs = append(s.segs, seg)
	}
	return seg
}

// openSegment creates (or opens, at replay) the segment file starting at
// start.
func (s *Server) openSegment(start int64) (*segment, error) {
	path := segmentPath(s.opts.DataDir, start)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	return &segment{start: start, end: math.MaxInt64, path: path, f: f}, nil
}

// refLocked and unrefLocked count a message at clo that needs its segment
// (no-ops in memory mode).
func (s *Server) refLocked(clo int64) {
	if seg := s.segmentLocked(clo); seg != nil {
		seg.refs++
	}
}

func (s *Server) unrefLocked(clo int64) {
	seg := s.segmentLocked(clo)
	if seg == nil {
		return
	}
	seg.refs--
	if seg.refs <= 0 && seg.end != math.MaxInt64 {
		s.dropSegmentLocked(seg)
	}
}

// dropSegmentLocked forgets seg; its file is closed and removed after the
// next write of the buffered records (at once during replay).
func (s *Server) dropSegmentLocked(seg *segment) {
	i := slices.Index(s.segs, seg)
	if i < 0 {
		return
	}
	s.segs = slices.Delete(s.segs, i, i+1)
	if s.persist == nil {
		seg.remove()
		return
	}
	s.persist.doom(seg)
}

// remove closes and deletes seg's file. A failure leaves a file a restart
// reads again (its messages come back, retention drops them again).
func (seg *segment) remove() {
	if seg.f != nil {
		seg.f.Close()
	}
	if seg.path != "" {
		_ = os.Remove(seg.path)
	}
}

// readWireLocked reads the encoding (size bytes) of the message whose record
// starts at clo.
func (s *Server) readWireLocked(clo int64, size int) ([]byte, error) {
	b, err := s.readRunLocked(clo, recordLen(size))
	if err != nil {
		return nil, err
	}
	return checkRecord(b, clo, size)
}

// readRunLocked reads n bytes of the commit log from clo, all in one segment.
func (s *Server) readRunLocked(clo, n int64) ([]byte, error) {
	seg := s.segmentLocked(clo)
	if seg == nil || seg.f == nil || clo+n > seg.end {
		return nil, fmt.Errorf("commit-log offset %d: no segment holds it", clo)
	}
	b := make([]byte, n)
	if _, err := seg.f.ReadAt(b, clo-seg.start); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", seg.path, clo-seg.start, err)
	}
	return b, nil
}

// checkRecord returns the message encoding inside the record b read at clo,
// after checking it is the record the index describes.
func checkRecord(b []byte, clo int64, size int) ([]byte, error) {
	if len(b) < recordOverhead || int(binary.BigEndian.Uint32(b)) != len(b)-recHeaderLen ||
		b[recHeaderLen] != recMessage || len(b)-recordOverhead != size {
		return nil, fmt.Errorf("commit-log offset %d: not the record the index describes", clo)
	}
	w := b[recordOverhead:]
	if len(w) < 36 || int64(binary.BigEndian.Uint64(w[28:36])) != clo {
		return nil, fmt.Errorf("commit-log offset %d: the record holds another message", clo)
	}
	return w, nil
}

// adjacentLocked reports whether b's record follows a's in one segment.
func (s *Server) adjacentLocked(a, b entry) bool {
	if b.clo != a.clo+recordLen(int(a.size)) {
		return false
	}
	seg := s.segmentLocked(a.clo)
	return seg != nil && b.clo < seg.end
}

// appendRunLocked appends the encodings of run (adjacent records, see
// adjacentLocked) read with one read.
func (s *Server) appendRunLocked(body []byte, run []entry) ([]byte, error) {
	first, last := run[0], run[len(run)-1]
	b, err := s.readRunLocked(first.clo, last.clo+recordLen(int(last.size))-first.clo)
	if err != nil {
		return body, err
	}
	for _, e := range run {
		at := e.clo - first.clo
		w, err := checkRecord(b[at:at+recordLen(int(e.size))], e.clo, int(e.size))
		if err != nil {
			return body, err
		}
		body = append(body, w...)
	}
	return body, nil
}

// messageAtCommitLogLocked reads the message whose record starts at clo
// from its segment, whether or not the index still holds it (as RocketMQ
// looks a send-back up in its commit log). nil when there is none.
func (s *Server) messageAtCommitLogLocked(clo int64) *message {
	seg := s.segmentLocked(clo)
	if seg == nil || seg.f == nil {
		return nil
	}
	var hdr [recHeaderLen]byte
	if _, err := seg.f.ReadAt(hdr[:], clo-seg.start); err != nil {
		return nil
	}
	n := int64(binary.BigEndian.Uint32(hdr[:4]))
	if n < recordOverhead-recHeaderLen || n > int64(s.opts.MaxFrame)+1<<16 {
		return nil
	}
	b, err := s.readRunLocked(clo, recHeaderLen+n)
	if err != nil || crc32.Checksum(b[recHeaderLen:], castagnoli) != binary.BigEndian.Uint32(b[4:8]) {
		return nil
	}
	w, err := checkRecord(b, clo, int(n)-(recordOverhead-recHeaderLen))
	if err != nil {
		return nil
	}
	m, err := decodeStored(w)
	if err != nil {
		return nil
	}
	return m
}

// --- replay ---

// segmentFiles lists the data dir's segment files by first offset.
func segmentFiles(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var starts []int64
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), segmentPrefix)
		if !ok || e.IsDir() {
			continue
		}
		start, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || start < 0 {
			continue
		}
		starts = append(starts, start)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	return starts, nil
}

// replaySegments reads every segment into the index (replayMessage), in
// commit-log order. A record that is cut short, fails its checksum or is
// not a message where it lies ends its segment: the file is truncated there
// with a Warn log line (a torn tail after a crash) and replay goes on with
// the next segment.
func (s *Server) replaySegments(st *replayState) error {
	starts, err := segmentFiles(s.opts.DataDir)
	if err != nil {
		return fmt.Errorf("list segments: %w", err)
	}
	for i, start := range starts {
		seg, err := s.openSegment(start)
		if err != nil {
			return err
		}
		if n := len(s.segs); n > 0 {
			s.segs[n-1].end = start
		}
		s.segs = append(s.segs, seg)
		good, reason, err := s.replaySegment(st, seg)
		if err != nil {
			return err
		}
		end := start + good
		seg.size = good
		if reason != "" {
			size, _ := seg.f.Seek(0, io.SeekEnd)
			s.log.Warn("data dir segment has a torn or corrupt tail; truncating it",
				"path", seg.path, "reason", reason, "kept_bytes", good, "dropped_bytes", size-good)
			if err := seg.f.Truncate(good); err != nil {
				return fmt.Errorf("truncate %s: %w", seg.path, err)
			}
		}
		if i+1 < len(starts) && end > starts[i+1] {
			return fmt.Errorf("segment %s runs past the start of the next one", seg.path)
		}
		s.nextCommitLog = max(s.nextCommitLog, end)
	}
	return nil
}

// replaySegment reads one segment; it returns the length of its good
// records and why it stopped early ("" at a clean end).
func (s *Server) replaySegment(st *replayState, seg *segment) (good int64, reason string, err error) {
	if _, err := seg.f.Seek(0, io.SeekStart); err != nil {
		return 0, "", fmt.Errorf("read %s: %w", seg.path, err)
	}
	r := newRecordReader(seg.f, s.opts.MaxFrame+1<<16)
	for {
		payload, why := r.next()
		if payload == nil {
			return good, why, nil
		}
		clo := seg.start + good
		if payload[0] != recMessage || len(payload) < 1+1+8+36 {
			return good, "not a message record", nil
		}
		flags := payload[1]
		due := int64(binary.BigEndian.Uint64(payload[2:10]))
		w := payload[10:]
		if int64(binary.BigEndian.Uint64(w[28:36])) != clo {
			return good, fmt.Sprintf("record at %d holds commit-log offset %d", clo, binary.BigEndian.Uint64(w[28:36])), nil
		}
		if err := s.replayMessage(st, seg, w, flags, due); err != nil {
			return good, err.Error(), nil
		}
		good += recHeaderLen + int64(len(payload))
	}
}
