package testbroker

// Behavior: the message store. Every topic has queues; a queue is an index
// of its messages (logical offsets min..max-1: commit-log offset, size, tag
// and store time, 24 bytes each) plus a cache of their encodings. Appends
// assign the next logical offset, a broker-wide unique commit-log offset and
// the store timestamp, then answer the pulls held on that queue (pull.go).
//
// Where the encodings live:
//   - memory mode (no Options.DataDir): in the cache, all of them;
//   - with a data dir: in commit-log segment files (segment.go); the cache
//     keeps the newest Options.CacheBytesPerQueue bytes of each queue (what
//     a consumer that keeps up reads) and everything not yet written, and a
//     pull further back reads the files. Memory then holds 24 bytes per
//     message whatever the backlog.
//
// Retention never drops a message some subscribed group has not consumed.
// Past Options.RetainPerQueue messages or Options.RetainBytesPerQueue bytes
// in a queue, the oldest messages below its floor are dropped (min advances;
// the newest message always stays, so the queue's offsets survive a
// restart); a pull below min answers PULL_OFFSET_MOVED with
// nextBeginOffset=min. The floor is the lowest committed offset (the next
// one to consume) of the groups subscribed to the queue's topic:
//   - every clustering group with a live member whose heartbeat subscribes
//     to the topic (a %RETRY%<group> topic counts: client-go subscribes to
//     it), at offset min when it has committed none yet;
//   - every group with a committed offset on the queue and no live member,
//     until it has been gone (no commit, no member) for
//     Options.GroupRetention: a group that never comes back then stops
//     holding messages back, and a drop below its offset is logged at Warn.
//
// Broadcasting groups keep their offsets in the client, so they hold
// nothing back (as in RocketMQ, which keeps messages by age). A group that is
// alive but no longer subscribes to the topic holds nothing back either.
//
// In memory mode a queue that reaches its bound with messages some group
// still needs refuses client sends with 14 SERVICE_NOT_AVAILABLE (RocketMQ's
// answer when its store cannot take more), so producers back off; messages
// the broker moves itself (a delay ending, a send-back, a commit) are always
// stored. With a data dir nothing is refused: the backlog goes to disk.
//
// All state lives under Server.mu. Methods named *Locked require it held.
// With Options.DataDir every state change is also recorded (persist.go):
// appendLocked calls s.onAppend once a message is final, and topic, offset,
// delay and transaction changes call the log*Locked hooks.

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

const (
	defaultTopicTBW102 = "TBW102"
	scheduleTopic      = "SCHEDULE_TOPIC_XXXX"
	retryPrefix        = "%RETRY%"
	dlqPrefix          = "%DLQ%"

	permInherit = 1
	permWrite   = 2
	permRead    = 4
	permRW      = permRead | permWrite

	maxDelayLevel = 18
)

var validTopic = regexp.MustCompile(`^[%|a-zA-Z0-9_-]{1,127}$`)

type topic struct {
	name        string
	readQueues  int
	writeQueues int
	perm        int
	queues      []*queue // len = max(readQueues, writeQueues)
}

// entry is what the index keeps of a stored message.
type entry struct {
	clo     int64  // commit-log offset
	storeMs int64  // store timestamp
	size    uint32 // len of its encoding (wire)
	tag     uint32 // interned TAGS; 0 = none
}

type queue struct {
	topic string
	id    int

	min   int64
	idx   []entry // idx[i] has logical offset min+i
	bytes int     // sum of sizes over idx

	cache      [][]byte // cache[i] is the encoding of logical offset cacheFrom+i
	cacheFrom  int64    // ≥ min; == max() when nothing is cached
	cacheBytes int

	waiters []*pullWaiter // pulls held until an append answers them (pull.go)
	deleted bool          // its topic was deleted; pulls answer 17

	// floor caches floorLocked; recomputed when Server.floorGen moved or
	// after floorRecheck (group expiry is a matter of time).
	floor    int64
	floorGen uint64
	floorAt  time.Time
	// goneLow is the lowest committed offset of the groups gone past
	// Options.GroupRetention (math.MaxInt64: none), computed with floor.
	goneLow int64
	// warned is when a drop or a refusal was last logged (warnEvery).
	warned time.Time
}

func newQueue(topicName string, id int) *queue { return &queue{topic: topicName, id: id} }

func (q *queue) max() int64 { return q.min + int64(len(q.idx)) }

// entryAt returns the index entry of logical offset off; off must be in
// [min, max).
func (q *queue) entryAt(off int64) entry { return q.idx[off-q.min] }

// cachedAt returns the cached encoding of off, or nil.
func (q *queue) cachedAt(off int64) []byte {
	if off < q.cacheFrom || off >= q.max() {
		return nil
	}
	return q.cache[off-q.cacheFrom]
}

type offsetKey struct {
	group, topic string
	queue        int
}

// topicLocked returns the topic or nil.
func (s *Server) topicLocked(name string) *topic { return s.topics[name] }

// ensureTopicLocked returns the topic, creating it with n queues when absent.
func (s *Server) ensureTopicLocked(name string, n, perm int) *topic {
	if t := s.topics[name]; t != nil {
		return t
	}
	t := &topic{name: strings.Clone(name), perm: perm} // names may be slices of a request header
	s.topics[name] = t
	s.resizeTopicLocked(t, n, n)
	s.log.Debug("topic created", "topic", name, "queues", n)
	return t
}

// resizeTopicLocked sets the queue counts. Queues are never removed, so
// messages and offsets survive a shrink and reappear on a later grow.
func (s *Server) resizeTopicLocked(t *topic, read, write int) {
	t.readQueues, t.writeQueues = read, write
	for len(t.queues) < max(read, write) {
		t.queues = append(t.queues, newQueue(t.name, len(t.queues)))
	}
	s.logTopicLocked(t)
}

// autoQueues is the queue count for a topic created on demand.
func (s *Server) autoQueues(name string) int {
	if strings.HasPrefix(name, retryPrefix) || strings.HasPrefix(name, dlqPrefix) {
		return 1
	}
	return s.opts.DefaultQueues
}

// internTagLocked returns the number standing for tag (0 for none); the
// index and the filters compare numbers.
func (s *Server) internTagLocked(tag string) uint32 {
	if tag == "" {
		return 0
	}
	if id, ok := s.tags[tag]; ok {
		return id
	}
	id := uint32(len(s.tags) + 1)
	s.tags[strings.Clone(tag)] = id
	return id
}

// appendLocked stores m at the end of (m.topic, m.queueID), which must exist.
// It fills queueOffset, commitLogOffset, storeTimestamp and storeHost.
func (s *Server) appendLocked(t *topic, m *message) {
	q := t.queues[m.queueID]
	m.topic = t.name
	m.queueOffset = q.max()
	m.commitLogOffset = s.nextCommitLog
	m.storeHost = s.storeHost
	if m.storeTimestamp == 0 {
		m.storeTimestamp = s.now().UnixMilli()
	}
	s.arena = m.sealInto(s.arena)
	seg := s.placeLocked(m) // nil in memory mode
	if seg != nil {
		s.nextCommitLog += recordLen(len(m.wire))
		seg.refs++
	} else {
		s.nextCommitLog += int64(len(m.wire))
	}
	q.idx = append(q.idx, entry{clo: m.commitLogOffset, storeMs: m.storeTimestamp,
		size: uint32(len(m.wire)), tag: s.internTagLocked(m.props[propTags])})
	q.bytes += len(m.wire)
	q.cache = append(q.cache, m.wire)
	q.cacheBytes += len(m.wire)
	if s.onAppend != nil {
		s.onAppend(seg, m)
	}
	s.trimLocked(q, 0, 0)
	s.evictLocked(q)
	s.wakeLocked(q)
}

// trimLocked applies the retention bounds to q as if n messages of size
// bytes were about to be added: it drops the oldest messages below the
// floor while the queue is over a bound (keeping the newest one when n is
// 0), and returns how many it dropped.
func (s *Server) trimLocked(q *queue, n, size int) int {
	count, bytes := len(q.idx)+n, q.bytes+size
	if count <= s.opts.RetainPerQueue && bytes <= s.opts.RetainBytesPerQueue {
		return 0
	}
	floor := s.floorLocked(q)
	keep := 0
	if n == 0 {
		keep = 1
	}
	drop := 0
	for drop < len(q.idx)-keep && q.min+int64(drop) < floor &&
		(count-drop > s.opts.RetainPerQueue || bytes > s.opts.RetainBytesPerQueue) {
		bytes -= int(q.idx[drop].size)
		drop++
	}
	if drop > 0 {
		s.warnExpiredDropLocked(q, q.min+int64(drop))
		s.dropLocked(q, drop)
	}
	return drop
}

// roomLocked reports whether q can take n more messages of size bytes in
// all: always with a data dir; in memory mode when, after dropping what every
// group consumed, they fit in the bounds, or nothing in the queue is
// waiting for a group any more (a message larger than the bound alone).
func (s *Server) roomLocked(q *queue, n, size int) bool {
	if s.persist != nil {
		return true
	}
	s.trimLocked(q, n, size)
	if len(q.idx)+n <= s.opts.RetainPerQueue && q.bytes+size <= s.opts.RetainBytesPerQueue {
		return true
	}
	return s.floorLocked(q) >= q.max()
}

// dropLocked removes the n oldest messages of q.
func (s *Server) dropLocked(q *queue, n int) {
	for _, e := range q.idx[:n] {
		q.bytes -= int(e.size)
		s.unrefLocked(e.clo)
	}
	q.idx = shrink(q.idx[n:])
	q.min += int64(n)
	if q.cacheFrom < q.min {
		k := min(int(q.min-q.cacheFrom), len(q.cache))
		for _, w := range q.cache[:k] {
			q.cacheBytes -= len(w)
		}
		clear(q.cache[:k])
		q.cache = shrink(q.cache[k:])
		q.cacheFrom = q.min
	}
}

// shrink copies s to a new array when most of its backing array lies unused
// behind it (slices that lose their front keep the array until an append
// outgrows it, so a drained backlog would keep its index).
func shrink[T any](s []T) []T {
	if cap(s) > 2*len(s)+4096 {
		return slices.Clone(s)
	}
	return s
}

// evictLocked drops the oldest cached encodings of q past
// Options.CacheBytesPerQueue, only those already written to the data dir
// (a pull of the others must still find them). Memory mode caches all.
func (s *Server) evictLocked(q *queue) {
	if s.persist == nil || q.cacheBytes <= s.opts.CacheBytesPerQueue {
		return
	}
	written := s.persist.written.Load()
	k := 0
	for q.cacheBytes > s.opts.CacheBytesPerQueue && k < len(q.cache) {
		e := q.entryAt(q.cacheFrom + int64(k))
		if e.clo+recordLen(int(e.size)) > written {
			break
		}
		q.cacheBytes -= len(q.cache[k])
		k++
	}
	clear(q.cache[:k])
	q.cache = shrink(q.cache[k:])
	q.cacheFrom += int64(k)
}

// wireLocked returns the encoding of logical offset off of q (in [min,
// max)): from the cache or, with a data dir, from its segment.
func (s *Server) wireLocked(q *queue, off int64) ([]byte, error) {
	if w := q.cachedAt(off); w != nil {
		return w, nil
	}
	e := q.entryAt(off)
	return s.readWireLocked(e.clo, int(e.size))
}

// appendWiresLocked appends to body the encodings of the messages of q in
// [from, to) that f matches. Messages not cached that lie next to each other
// in one segment are read with one read.
func (s *Server) appendWiresLocked(body []byte, q *queue, from, to int64, f tagFilter) ([]byte, error) {
	var run []entry
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		var err error
		body, err = s.appendRunLocked(body, run)
		run = run[:0]
		return err
	}
	for off := from; off < to; off++ {
		e := q.entryAt(off)
		if !f.match(e.tag) {
			continue
		}
		if w := q.cachedAt(off); w != nil {
			if err := flush(); err != nil {
				return body, err
			}
			body = append(body, w...)
			continue
		}
		if n := len(run); n > 0 && !s.adjacentLocked(run[n-1], e) {
			if err := flush(); err != nil {
				return body, err
			}
		}
		run = append(run, e)
	}
	return body, flush()
}

// floorRecheck bounds how long a computed floor is trusted without any
// commit or membership change (group expiry is a matter of time alone).
const floorRecheck = time.Second

// floorLocked is the lowest offset of q some subscribed group still needs
// (see the Behavior comment); math.MaxInt64 when no group holds q.
func (s *Server) floorLocked(q *queue) int64 {
	now := s.now()
	if q.floorGen != s.floorGen || now.Sub(q.floorAt) >= floorRecheck || q.floorAt.IsZero() {
		q.floor, q.goneLow = s.computeFloorLocked(q, now, nil)
		q.floorGen, q.floorAt = s.floorGen, now
	}
	return max(q.floor, q.min)
}

// computeFloorLocked computes floorLocked and the lowest offset of the
// groups gone past Options.GroupRetention; with holders it also calls
// holders(group, offset) for every group that counts.
func (s *Server) computeFloorLocked(q *queue, now time.Time, holders func(string, int64)) (floor, goneLow int64) {
	floor, goneLow = math.MaxInt64, math.MaxInt64
	hold := func(group string, off int64) {
		floor = min(floor, off)
		if holders != nil {
			holders(group, off)
		}
	}
	for name, g := range s.groups {
		if !g.subscribesClustering(q.topic) {
			continue
		}
		off, ok := s.offsets[offsetKey{name, q.topic, q.id}]
		if !ok {
			off = q.min // nothing consumed here yet
		}
		hold(name, off)
	}
	for k, off := range s.offsets {
		if k.topic != q.topic || k.queue != q.id {
			continue
		}
		if g := s.groups[k.group]; g != nil && len(g.members) > 0 {
			continue // alive: counted above if it subscribes
		}
		if s.groupGoneLocked(k.group, now) {
			goneLow = min(goneLow, off)
			continue
		}
		hold(k.group, off)
	}
	return floor, goneLow
}

// groupGoneLocked reports whether group has had no member and no commit
// for Options.GroupRetention.
func (s *Server) groupGoneLocked(group string, now time.Time) bool {
	seen, ok := s.groupSeen[group]
	if !ok {
		seen = s.started
	}
	return now.Sub(seen) > s.opts.GroupRetention
}

// touchGroupLocked records activity of group (a commit, a member) and
// makes the floors be computed again.
func (s *Server) touchGroupLocked(group string) {
	s.groupSeen[group] = s.now()
	s.floorGen++
}

// warnEvery bounds how often a queue logs a drop or a refusal.
const warnEvery = 10 * time.Second

// warnExpiredDropLocked logs at Warn the groups, gone for longer than
// Options.GroupRetention, whose committed offset on q is below newMin:
// dropping up to newMin loses messages they never consumed. At most once per
// warnEvery per queue.
func (s *Server) warnExpiredDropLocked(q *queue, newMin int64) {
	now := s.now()
	if newMin <= q.goneLow || now.Sub(q.warned) < warnEvery {
		return
	}
	var gone []string
	for k, off := range s.offsets {
		if k.topic == q.topic && k.queue == q.id && off < newMin && s.groupGoneLocked(k.group, now) {
			if g := s.groups[k.group]; g == nil || len(g.members) == 0 {
				gone = append(gone, k.group)
			}
		}
	}
	if len(gone) == 0 {
		return
	}
	q.warned = now
	slices.Sort(gone)
	s.log.Warn("retention dropped messages of groups gone longer than the group retention", "topic", q.topic,
		"queue", q.id, "groups", gone, "min_offset", newMin, "group_retention", s.opts.GroupRetention.String())
}

// refusalLocked is the SERVICE_NOT_AVAILABLE answer to a send q has no room
// for (memory mode), logged at Warn at most once per warnEvery per queue.
func (s *Server) refusalLocked(req *command, q *queue) *command {
	var holders []string
	s.computeFloorLocked(q, s.now(), func(g string, off int64) {
		holders = append(holders, fmt.Sprintf("%s@%d", g, off))
	})
	slices.Sort(holders)
	if now := s.now(); now.Sub(q.warned) >= warnEvery {
		q.warned = now
		s.log.Warn("memory store full: refusing sends until the groups consume", "topic", q.topic, "queue", q.id,
			"messages", len(q.idx), "bytes", q.bytes, "groups", holders,
			"retain_per_queue", s.opts.RetainPerQueue, "retain_bytes_per_queue", s.opts.RetainBytesPerQueue)
	}
	return newResponse(req, codeServiceNotAvailable, fmt.Sprintf(
		"service not available now: the broker's memory store is full (no data dir): %s queue %d holds %d messages, %d bytes that groups %s have not consumed",
		q.topic, q.id, len(q.idx), q.bytes, strings.Join(holders, ", ")))
}

// searchCommitLogLocked finds the message with commit-log offset clo in the
// queues of the named topics; it returns the queue and logical offset.
func (s *Server) searchCommitLogLocked(clo int64, topics ...string) (*queue, int64, bool) {
	for _, name := range topics {
		t := s.topics[name]
		if t == nil {
			continue
		}
		for _, q := range t.queues {
			i := sort.Search(len(q.idx), func(i int) bool { return q.idx[i].clo >= clo })
			if i < len(q.idx) && q.idx[i].clo == clo {
				return q, q.min + int64(i), true
			}
		}
	}
	return nil, 0, false
}
