package testbroker

// Behavior: lifecycle, listeners, connections and request dispatch.
//
// Run listens on two addresses, the name server and the broker. Both accept
// every request code (client-go's name-server and broker codes do not
// overlap); the route advertises the broker address as an IP literal.
// Each connection has one reader goroutine. Requests that never wait
// (sends, offsets, routes, a pull answerable at once) run on it and their
// response is written right after each (inlineOK); the rest (a held pull,
// heartbeats, anything while a Pause/Latency fault is on) run in their own
// goroutine, so a long-polled pull never blocks the requests behind it.
// Responses go out in any order; responses finished while another is being
// written are combined into its next write (conn.write).
// Frames already read when the peer closes are still handled (client-go
// flushes offsets with oneway frames right before closing). A frame longer
// than Options.MaxFrame, shorter than 4 bytes or with an undecodable header
// closes the connection with a log line. Unknown request codes answer 3
// REQUEST_CODE_NOT_SUPPORTED. A panicking handler answers 1 SYSTEM_ERROR.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Response codes.
const (
	codeSuccess              = 0
	codeSystemError          = 1
	codeRequestNotSupported  = 3
	codeServiceNotAvailable  = 14
	codeNoPermission         = 16
	codeTopicNotExist        = 17
	codePullNotFound         = 19
	codePullRetryImmediately = 20
	codePullOffsetMoved      = 21
	codeQueryNotFound        = 22
)

// Options configure a Server. The zero value is usable.
type Options struct {
	// NameSrvAddr and BrokerAddr are the listen addresses; default
	// "127.0.0.1:0". The broker address advertised in routes is the
	// broker listener's IP:port; an unspecified IP is advertised as 127.0.0.1.
	NameSrvAddr, BrokerAddr string
	// BrokerName and ClusterName appear in routes (default "broker-a",
	// "DefaultCluster").
	BrokerName, ClusterName string
	// DataDir, when set, keeps the messages in commit-log segment files
	// there (segment.go) and the rest in an append-only log (persist.go),
	// so a restart on the same directory keeps every acknowledged message,
	// pending delayed messages, open transactions, committed offsets and
	// topic configs, and memory holds only an index of the messages and a
	// cache of each queue's newest ones. Empty (default) is memory only.
	DataDir string
	// SegmentBytes is the size past which the commit log starts a new
	// segment file (default 64 MiB); whole segments are deleted once
	// retention has dropped every message in them.
	SegmentBytes int64
	// CacheBytesPerQueue bounds the newest message encodings kept in memory
	// per queue with a DataDir (default 1 MiB); older ones are read from the
	// segments.
	CacheBytesPerQueue int
	// SyncEveryWrite fsyncs the log before every response that changed
	// state. Without it writes reach the OS page cache before the response
	// (a process crash loses nothing acknowledged; a machine crash may lose
	// the last writes).
	SyncEveryWrite bool
	// LogCompactMinBytes: the DataDir's broker.log (offsets, topics,
	// pending state) is rewritten to the live state at start and, in the
	// background while running, whenever it is at least this large and has
	// doubled since the last rewrite (compact.go; sends are not held up, a
	// process killed mid-rewrite loses nothing it acknowledged). Default 64
	// MiB; negative rewrites at start only.
	LogCompactMinBytes int64
	// DelayScale multiplies delay-level durations: 1 (default) is real time,
	// 0.01 makes level 3 (10 s) take 100 ms.
	DelayScale float64
	// StrictTopics makes route lookups for unknown topics answer 17
	// TOPIC_NOT_EXIST like real RocketMQ, so a push consumer on a missing
	// topic fails to Start. Sends still auto-create (autoCreateTopicEnable).
	// By default route lookups create the topic.
	StrictTopics bool
	// DefaultQueues is the queue count of auto-created topics (default 4).
	DefaultQueues int
	// RetainPerQueue and RetainBytesPerQueue bound a queue (default 100000
	// messages, 64 MiB of encodings): past them the oldest messages every
	// subscribed group has consumed are dropped. Messages a group still
	// needs are never dropped: without a DataDir, a full queue refuses
	// sends (14 SERVICE_NOT_AVAILABLE) instead; with one, the backlog grows
	// on disk (store.go).
	RetainPerQueue      int
	RetainBytesPerQueue int
	// GroupRetention is how long a group with committed offsets and no live
	// member (no commit either) keeps holding back the messages it has not
	// consumed (default 72 h, RocketMQ's fileReservedTime); after that
	// retention drops them like consumed ones, with a Warn log line.
	GroupRetention time.Duration
	// MaxFrame bounds one request frame (default 16 MiB).
	MaxFrame int
	// MaxPullHold caps how long an empty pull is held (default 15 s; the
	// client times out at 30 s).
	MaxPullHold time.Duration
	// LockExpiry is how long an orderly queue lock lasts without renewal
	// (default 25 s; client-go renews every 20 s and never unlocks a queue it
	// loses in a rebalance).
	LockExpiry time.Duration
	// TxCheckTimeout is how long a half message may stay open before the
	// broker asks its producer (default 6 s, Java transactionTimeOut);
	// TxCheckInterval spaces the checks (default 60 s); after TxCheckMax
	// checks (default 15) the half is dropped.
	TxCheckTimeout, TxCheckInterval time.Duration
	TxCheckMax                      int
	// Topics are created at start, name → queue count.
	Topics map[string]int
	// Logger receives the broker's logs (default: discarded).
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.NameSrvAddr == "" {
		o.NameSrvAddr = "127.0.0.1:0"
	}
	if o.BrokerAddr == "" {
		o.BrokerAddr = "127.0.0.1:0"
	}
	if o.BrokerName == "" {
		o.BrokerName = "broker-a"
	}
	if o.ClusterName == "" {
		o.ClusterName = "DefaultCluster"
	}
	if o.DelayScale <= 0 {
		o.DelayScale = 1
	}
	if o.DefaultQueues <= 0 {
		o.DefaultQueues = 4
	}
	if o.RetainPerQueue <= 0 {
		o.RetainPerQueue = 100000
	}
	if o.RetainBytesPerQueue <= 0 {
		o.RetainBytesPerQueue = 64 << 20
	}
	if o.GroupRetention <= 0 {
		o.GroupRetention = 72 * time.Hour
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
	}
	if o.CacheBytesPerQueue <= 0 {
		o.CacheBytesPerQueue = 1 << 20
	}
	if o.MaxFrame <= 0 {
		o.MaxFrame = DefaultMaxFrame
	}
	if o.LogCompactMinBytes == 0 {
		o.LogCompactMinBytes = 64 << 20
	}
	if o.MaxPullHold <= 0 {
		o.MaxPullHold = 15 * time.Second
	}
	if o.LockExpiry <= 0 {
		o.LockExpiry = 25 * time.Second
	}
	if o.TxCheckTimeout <= 0 {
		o.TxCheckTimeout = 6 * time.Second
	}
	if o.TxCheckInterval <= 0 {
		o.TxCheckInterval = 60 * time.Second
	}
	if o.TxCheckMax <= 0 {
		o.TxCheckMax = 15
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a running name server + broker.
type Server struct {
	opts       Options
	log        *slog.Logger
	nsLn, brLn net.Listener
	brokerAddr string
	storeHost  hostPort
	now        func() time.Time

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu            sync.Mutex
	started       time.Time
	topics        map[string]*topic
	tags          map[string]uint32 // interned TAGS values (store.go)
	segs          []*segment        // the commit log, by offset (segment.go); nil in memory mode
	tombstones    map[string]int64  // deleted topic → commit-log offset its older messages lie below
	nextCommitLog int64
	offsets       map[offsetKey]int64
	groupSeen     map[string]time.Time // last commit or member of each group (store.go floors)
	floorGen      uint64               // bumped by every commit and membership change
	conns         map[*conn]struct{}
	groups        map[string]*consumerGroup
	producers     map[string]map[*conn]struct{}
	locks         map[lockKey]lockEntry
	halves        map[int64]*halfMessage // open transactions by commitLogOffset
	delayed       delayHeap
	delayWake     chan struct{}
	onAppend      func(*segment, *message) // persistence hook; nil in memory mode
	persist       *persister               // the DataDir log; nil in memory mode
	readyMu       sync.Mutex               // guards ready; taken inside mu or alone
	ready         []*pullWaiter            // pulls answered by appends, to send after the log write (pull.go)
	onCompactStep func(string)             // test hook at the steps of an online compaction (compact.go); set under mu
	arena         []byte                   // while a batch is stored: shared buffer for its encodings
	faults        faultState

	handlers map[int16]handlerFunc
}

type handlerFunc func(c *conn, req *command) *command

// Run starts a server; it stops when ctx is done or Close is called.
func Run(ctx context.Context, opts Options) (*Server, error) {
	opts.setDefaults()
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		now:        time.Now,
		topics:     map[string]*topic{},
		tags:       map[string]uint32{},
		tombstones: map[string]int64{},
		offsets:    map[offsetKey]int64{},
		groupSeen:  map[string]time.Time{},
		conns:      map[*conn]struct{}{},
		groups:     map[string]*consumerGroup{},
		producers:  map[string]map[*conn]struct{}{},
		locks:      map[lockKey]lockEntry{},
		halves:     map[int64]*halfMessage{},
		delayWake:  make(chan struct{}, 1),
		faults:     faultState{dropCommits: map[string]bool{}},
	}
	s.started = s.now()
	s.registerHandlers()
	if opts.DataDir != "" {
		if err := s.openDataDir(); err != nil {
			return nil, fmt.Errorf("testbroker data dir %s: %w", opts.DataDir, err)
		}
	}
	var err error
	if s.nsLn, err = net.Listen("tcp", opts.NameSrvAddr); err != nil {
		s.closeLog()
		return nil, fmt.Errorf("listen name server %s: %w", opts.NameSrvAddr, err)
	}
	if s.brLn, err = net.Listen("tcp", opts.BrokerAddr); err != nil {
		s.nsLn.Close()
		s.closeLog()
		return nil, fmt.Errorf("listen broker %s: %w", opts.BrokerAddr, err)
	}
	s.brokerAddr = advertised(s.brLn.Addr())
	s.storeHost = parseHostPort(s.brokerAddr)

	s.mu.Lock()
	s.ensureTopicLocked(defaultTopicTBW102, 8, permRW|permInherit)
	s.ensureTopicLocked(scheduleTopic, maxDelayLevel, permRW)
	for name, n := range opts.Topics {
		s.createTopicLocked(name, n, n)
	}
	s.mu.Unlock()
	s.flushLog()

	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(4)
	go s.acceptLoop(s.nsLn)
	go s.acceptLoop(s.brLn)
	go s.delayLoop()
	go s.txCheckLoop()
	if s.persist != nil {
		s.wg.Add(1)
		go s.compactLoop()
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.ctx.Done():
		}
	}()
	s.log.Info("testbroker started", "namesrv", s.NameSrvAddr(), "broker", s.brokerAddr, "delay_scale", opts.DelayScale)
	return s, nil
}

// Start runs a server on free 127.0.0.1 ports for the duration of the test.
func Start(t testing.TB, opts ...func(*Options)) *Server {
	t.Helper()
	var o Options
	for _, f := range opts {
		f(&o)
	}
	s, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("testbroker.Run: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func advertised(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() || ip.To4() == nil {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(ta.Port))
}

// NameSrvAddr is the name server address (ip:port) to give the client.
func (s *Server) NameSrvAddr() string { return advertised(s.nsLn.Addr()) }

// BrokerAddr is the broker address (ip:port) advertised in routes.
func (s *Server) BrokerAddr() string { return s.brokerAddr }

// Close stops accepting, closes every connection and waits for all
// goroutines. It is idempotent.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.nsLn.Close()
		s.brLn.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.closeLog()
		s.log.Info("testbroker stopped")
	})
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("accept", "err", err)
			}
			return
		}
		c := &conn{
			s:        s,
			nc:       nc,
			remote:   parseHostPort(nc.RemoteAddr().String()),
			done:     make(chan struct{}),
			inflight: make(chan struct{}, maxInflightPerConn),
		}
		c.wcond = sync.NewCond(&c.wmu)
		s.mu.Lock()
		if s.ctx.Err() != nil {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go c.serve()
	}
}

// maxInflightPerConn bounds concurrent requests per connection; the reader
// stops reading while it is reached (backpressure, bounded memory).
const maxInflightPerConn = 4096

// conn is one client TCP connection.
type conn struct {
	s        *Server
	nc       net.Conn
	remote   hostPort
	wmu      sync.Mutex
	wcond    *sync.Cond    // on wmu: pending shrank or the writer left
	writing  bool          // a goroutine is writing; guarded by wmu
	pending  []byte        // frames waiting for that writer; guarded by wmu
	spare    []byte        // the writer's other buffer; guarded by wmu
	done     chan struct{} // closed when the reader stops
	inflight chan struct{}
	handlers sync.WaitGroup

	clientID string // set by heartbeat; guarded by s.mu
}

func (c *conn) serve() {
	s := c.s
	defer s.wg.Done()
	log := s.log.With("remote", c.nc.RemoteAddr().String())
	r := bufio.NewReaderSize(c.nc, 64<<10)
	// out holds responses of inline requests. It is written after each
	// request: holding it while later frames are processed delayed the
	// first response by up to that whole backlog (a p99 of milliseconds
	// under steady load). With SyncEveryWrite one fsync covers all buffered
	// frames (group commit), so there it is written once no whole frame is
	// buffered.
	var out []byte
	for {
		if len(out) > 0 && (!s.opts.SyncEveryWrite || len(out) > 1<<20 || !frameBuffered(r)) {
			var ok bool
			if out, ok = c.flushInline(out); !ok {
				break
			}
			out = out[:0]
			if cap(out) > 256<<10 {
				out = nil // a big pull body grew it
			}
		}
		req, err := readFrame(r, s.opts.MaxFrame)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && s.ctx.Err() == nil {
				log.Warn("closing connection", "err", err)
			}
			break
		}
		if req.isResponse() {
			continue // replies to broker→client requests carry nothing we need
		}
		if !s.inlineOK(req) {
			c.spawn(func() { c.handle(req) })
			continue
		}
		var hold func() *command
		resp := c.process(req, false, func() *command {
			if req.Code != 11 {
				return c.dispatch(req)
			}
			r, h := s.startPull(c, req)
			hold = h
			return r
		})
		if hold != nil {
			c.spawn(func() {
				if resp := c.process(req, true, hold); resp != nil {
					c.write(resp)
				}
			})
		} else if resp != nil {
			out = appendFrame(out, resp)
		}
	}
	if len(out) > 0 {
		c.flushInline(out)
	}
	c.nc.Close()
	close(c.done)
	c.handlers.Wait()
	s.dropConn(c)
}

// inlineOK reports whether req is handled on the reader goroutine: requests
// that never wait (sends, offsets, routes, a pull that can be answered at
// once), while no Pause/Latency fault is on. Heartbeats notify other
// connections and run on their own goroutine, as does a pull that is held.
func (s *Server) inlineOK(req *command) bool {
	if req.Code == 34 || req.Code == 35 {
		return false
	}
	return s.faults.paused.Load() == nil && s.faults.latency.Load() == 0
}

// frameBuffered reports whether r holds a whole frame, so reading it will
// not block.
func frameBuffered(r *bufio.Reader) bool {
	if r.Buffered() < 4 {
		return false
	}
	b, _ := r.Peek(4)
	l := int(int32(binary.BigEndian.Uint32(b)))
	return l < 0 || r.Buffered()-4 >= l
}

// spawn runs f on its own goroutine, bounded by maxInflightPerConn (the
// reader stops while the bound is reached).
func (c *conn) spawn(f func()) {
	c.inflight <- struct{}{}
	c.handlers.Add(1)
	go func() {
		defer func() { <-c.inflight; c.handlers.Done() }()
		f()
	}()
}

// handle runs one request on its own goroutine, after the fault hooks.
func (c *conn) handle(req *command) {
	if !c.s.applyFaults(c) {
		return
	}
	if resp := c.process(req, true, func() *command { return c.dispatch(req) }); resp != nil {
		c.write(resp)
	}
}

// dispatch calls req's handler.
func (c *conn) dispatch(req *command) *command {
	s := c.s
	h := s.handlers[req.Code]
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("request", "code", req.Code, "ext", req.extMap(), "client", c.remote.String())
	}
	if h == nil {
		s.log.Warn("unsupported request code", "code", req.Code)
		return newResponse(req, codeRequestNotSupported, fmt.Sprintf("request code %d not supported", req.Code))
	}
	return h(c, req)
}

// flushInline writes the responses of inline requests after their state
// changes reached the data-dir log (one log write for all of them), together
// with the answers of pulls those changes released (deliverReady). If the
// log write fails nothing is acknowledged: the connection closes and the
// client's sends fail. It returns out (possibly grown, for reuse) and
// whether the connection is still usable.
func (c *conn) flushInline(out []byte) ([]byte, bool) {
	if c.s.writeLog() != nil {
		c.nc.Close()
		return out, false
	}
	out = c.s.deliverReady(c, out)
	c.writeRaw(out)
	return out, true
}

// process runs a handler step: a panic answers 1 SYSTEM_ERROR. With flush,
// state changes reach the data-dir log before the response exists (a failed
// log write turns success into 1 SYSTEM_ERROR); without, the caller flushes
// before it writes the response (flushInline).
func (c *conn) process(req *command, flush bool, run func() *command) (resp *command) {
	s := c.s
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("handler panic", "code", req.Code, "panic", fmt.Sprint(p))
			resp = newResponse(req, codeSystemError, fmt.Sprintf("internal error: %v", p))
		}
	}()
	resp = run()
	if !flush {
		return resp
	}
	if err := s.flushLog(); err != nil && resp != nil && resp.Code == codeSuccess {
		resp = newResponse(req, codeSystemError, "data dir write failed: "+err.Error())
	}
	return resp
}

// closeLog flushes and closes the data-dir files.
func (s *Server) closeLog() {
	if s.persist == nil {
		return
	}
	if err := s.persist.close(); err != nil {
		s.log.Error("closing data dir log", "err", err)
	}
	s.mu.Lock()
	for _, seg := range s.segs {
		if seg.f != nil {
			seg.f.Close()
		}
	}
	s.mu.Unlock()
}

// write sends one frame; errors mean the peer is gone and the reader will
// notice. Concurrent writers combine: while one goroutine is in the write
// syscall, others append their frames to c.pending and return, and the
// writer sends everything pending in one syscall before it leaves, so many
// small responses cost few syscalls and none waits for a timer.
func (c *conn) write(cmd *command) {
	bp := framePool.Get().(*[]byte)
	*bp = appendFrame((*bp)[:0], cmd)
	c.writeFrames(*bp, nil, nil)
	putFrameBuf(bp)
}

// writeRaw writes encoded frames; b is not retained.
func (c *conn) writeRaw(b []byte) { c.writeFrames(b, nil, nil) }

// writeClaimed writes cmd only if it can do so without waiting for a
// backed-up writer and wins claim (false → true) first; otherwise it
// leaves cmd to whoever else may claim it.
func (c *conn) writeClaimed(cmd *command, claim *atomic.Bool) { c.writeFrames(nil, cmd, claim) }

// framePool recycles the buffers responses are encoded into.
var framePool = sync.Pool{New: func() any { return new([]byte) }}

func putFrameBuf(bp *[]byte) {
	if cap(*bp) <= 64<<10 { // not a large pull body
		framePool.Put(bp)
	}
}

// writeFrames writes b, or with a claim the encoding of cmd. It does not
// retain b: frames that wait are copied into c.pending, and the writer
// alternates between c.pending and c.spare.
func (c *conn) writeFrames(b []byte, cmd *command, claim *atomic.Bool) {
	c.wmu.Lock()
	// A peer that sends but does not read must not grow pending without
	// bound: wait for the writer once maxPendingWrite bytes are queued.
	for c.writing && len(c.pending) >= maxPendingWrite {
		if claim != nil {
			c.wmu.Unlock()
			return
		}
		c.wcond.Wait()
	}
	if claim != nil {
		if !claim.CompareAndSwap(false, true) {
			c.wmu.Unlock()
			return
		}
		bp := framePool.Get().(*[]byte)
		defer putFrameBuf(bp)
		*bp = appendFrame((*bp)[:0], cmd) // only the claim's winner touches cmd
		b = *bp
	}
	if c.writing {
		c.pending = append(c.pending, b...)
		c.wmu.Unlock()
		return
	}
	c.writing = true
	owned := false // b is one of c's buffers, not the caller's
	for {
		c.wmu.Unlock()
		c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := c.nc.Write(b)
		c.wmu.Lock()
		if owned && cap(b) <= 256<<10 { // keep it unless a big pull body grew it
			c.spare = b[:0]
		}
		if err != nil {
			c.nc.Close()
			c.pending = nil
			break
		}
		if len(c.pending) == 0 {
			break
		}
		c.wcond.Broadcast()
		b, c.pending, c.spare = c.pending, c.spare, nil
		owned = true
	}
	c.writing = false
	c.wcond.Broadcast()
	c.wmu.Unlock()
}

// maxPendingWrite bounds the responses queued behind a connection's writer.
const maxPendingWrite = 4 << 20

// dropConn forgets a closed connection: its client leaves every group, its
// orderly locks are released and the remaining members are notified.
func (s *Server) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	for _, conns := range s.producers {
		delete(conns, c)
	}
	var notify []notification
	if c.clientID != "" {
		notify = s.removeClientLocked(c, c.clientID)
	}
	s.mu.Unlock()
	s.sendNotifications(notify)
}

func (s *Server) registerHandlers() {
	s.handlers = map[int16]handlerFunc{
		105: s.handleGetRoute,
		10:  s.handleSend,
		320: s.handleSendBatch,
		11:  s.handlePull,
		14:  s.handleQueryOffset,
		15:  s.handleUpdateOffset,
		29:  s.handleSearchOffset,
		30:  s.handleGetMaxOffset,
		31:  s.handleGetMinOffset,
		34:  s.handleHeartbeat,
		35:  s.handleUnregister,
		38:  s.handleConsumerList,
		36:  s.handleSendBack,
		37:  s.handleEndTransaction,
		41:  s.handleLock,
		42:  s.handleUnlock,
		17:  s.handleCreateTopic,
		215: s.handleDeleteTopic,
		216: s.handleDeleteTopic,
		206: s.handleTopicList,
	}
}

func extInt(req *command, key string, def int64) int64 {
	v, ok := req.extValue(key)
	if !ok || v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return def
	}
	return n
}
