// Package load drives order-service's POST /api/v1/orders: open-loop at a
// target arrival rate (latency measured from the intended send time, so a
// slow server cannot hide its queueing) or closed-loop with N connections,
// with a population of users, repeat buyers and replayed Idempotency-Keys.
// It counts answers by kind, records latency in an HDR histogram and keeps
// a per-second timeline.
package load

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Config is one load run.
type Config struct {
	OrderAddr   string        `json:"order_addr"`   // host:port of order-service
	ProductID   string        `json:"product_id"`   // the sale's product
	Rate        float64       `json:"rate"`         // open-loop arrivals/s; 0 = closed loop
	Conns       int           `json:"conns"`        // connections (open loop: the most in flight)
	Users       int           `json:"users"`        // distinct users
	RepeatShare float64       `json:"repeat_share"` // share of requests by a user who already got a 202 (new key)
	DupShare    float64       `json:"dup_share"`    // share of requests replaying an earlier Idempotency-Key
	Duration    time.Duration `json:"duration_ns"`  // stop after this long (0 = no limit)
	Requests    int           `json:"requests"`     // stop after this many requests (0 = no limit)
	Timeout     time.Duration `json:"timeout_ns"`   // per request (default 10 s)
	RunID       string        `json:"run_id"`       // prefix of users' Idempotency-Keys (default: random)
	UserPrefix  string        `json:"user_prefix"`  // user IDs are <prefix><n>, n < Users (default "u")
	Seed        uint64        `json:"seed"`
	// OnAccepted, when set, is called with every new order answered 202:
	// when the answer arrived and the pay_deadline it gave (zero if none).
	// It runs on the sending connection's goroutine.
	OnAccepted func(orderID string, at, payDeadline time.Time) `json:"-"`
}

// Counts are the answers by kind.
type Counts struct {
	Sent          int64 `json:"sent"`
	Accepted      int64 `json:"accepted"`       // 202 with a new order_id
	Replayed      int64 `json:"replayed"`       // 2xx with an order_id seen before (idempotent replay)
	SoldOut       int64 `json:"sold_out"`       // 409 sold_out
	LimitExceeded int64 `json:"limit_exceeded"` // 409 limit_exceeded
	ClientError   int64 `json:"client_error"`   // other 4xx
	// Unavailable is 503: the service asked to retry later (its stock is
	// being rebuilt after Redis lost its data), a refusal by design, not a
	// failure.
	Unavailable int64 `json:"unavailable"`
	ServerError int64 `json:"server_error"` // other 5xx
	NetError    int64 `json:"net_error"`    // no answer (connect, timeout, reset)
}

// Errors is every answer that is not a 2xx, an expected 409 or a 503.
func (c Counts) Errors() int64 { return c.ClientError + c.ServerError + c.NetError }

// Latency is a summary of the HDR histogram, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Second is one second of the run.
type Second struct {
	T        float64 `json:"t"` // seconds since the start, end of this interval
	Sent     int64   `json:"sent"`
	Accepted int64   `json:"accepted"`
	SoldOut  int64   `json:"sold_out"`
	Errors   int64   `json:"errors"`
	P99      float64 `json:"p99_ms"`
}

// Result is what a run measured.
type Result struct {
	Config      Config           `json:"config"`
	Mode        string           `json:"mode"` // open | closed
	Started     time.Time        `json:"started"`
	Elapsed     time.Duration    `json:"elapsed_ns"`
	Counts      Counts           `json:"counts"`
	ByAnswer    map[string]int64 `json:"by_answer"` // "202", "409 sold_out", "net_error", ...
	SentPerSec  float64          `json:"sent_per_s"`
	AccPerSec   float64          `json:"accepted_per_s"` // 202s (new and replayed) per second
	Latency     Latency          `json:"latency"`
	Timeline    []Second         `json:"timeline"`
	AcceptedIDs []string         `json:"-"`
	SampleError string           `json:"sample_error,omitempty"`
}

// runner is the state of one run.
type runner struct {
	cfg   Config
	start time.Time
	body  func(user string) []byte

	mu         sync.Mutex
	hist       *hdrhistogram.Histogram
	sec        *hdrhistogram.Histogram
	counts     Counts
	byAnswer   map[string]int64
	ids        map[string]bool
	idList     []string
	accUsers   []string
	recent     []pick // ring of recent requests, for replays
	recentNext int
	fresh      int
	keySeq     int
	rnd        *rand.Rand
	sampleErr  string

	accepted atomic.Int64 // for Accepted()
	issued   atomic.Int64
}

type pick struct{ user, key string }

// Run is a load run in progress; Wait returns its Result.
type Run struct {
	r    *runner
	done chan struct{}
	res  *Result
}

// Accepted returns the number of 2xx answers so far (new orders and replays).
func (r *Run) Accepted() int64 { return r.r.accepted.Load() }

// Wait blocks until the run is over and returns its result.
func (r *Run) Wait() *Result { <-r.done; return r.res }

// Start starts a run; progress, when not nil, gets one line a second.
func Start(ctx context.Context, cfg Config, progress io.Writer) (*Run, error) {
	if cfg.OrderAddr == "" || cfg.ProductID == "" {
		return nil, fmt.Errorf("load: order address and product are required")
	}
	if cfg.Duration <= 0 && cfg.Requests <= 0 {
		return nil, fmt.Errorf("load: set a duration or a request count")
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 64
	}
	if cfg.Users <= 0 {
		cfg.Users = 1_000_000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RunID == "" {
		cfg.RunID = strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	}
	if cfg.UserPrefix == "" {
		cfg.UserPrefix = "u"
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	r := &runner{
		cfg:      cfg,
		hist:     hdrhistogram.New(1, 60_000_000, 3), // 1 µs .. 60 s
		sec:      hdrhistogram.New(1, 60_000_000, 3),
		byAnswer: map[string]int64{},
		ids:      map[string]bool{},
		recent:   make([]pick, 0, 4096),
		rnd:      rand.New(rand.NewPCG(cfg.Seed, 7)),
	}
	prefix := []byte(`{"user_id":"`)
	suffix := []byte(`","product_id":` + strconv.Quote(cfg.ProductID) + `,"quantity":1}`)
	r.body = func(user string) []byte {
		b := make([]byte, 0, len(prefix)+len(user)+len(suffix))
		return append(append(append(b, prefix...), user...), suffix...)
	}
	run := &Run{r: r, done: make(chan struct{})}
	r.start = time.Now()
	go func() {
		defer close(run.done)
		run.res = r.run(ctx, progress)
	}()
	return run, nil
}

// next picks who orders with which key.
func (r *runner) next() pick {
	r.mu.Lock()
	defer r.mu.Unlock()
	x := r.rnd.Float64()
	var p pick
	switch {
	case x < r.cfg.DupShare && len(r.recent) > 0:
		return r.recent[r.rnd.IntN(len(r.recent))]
	case x < r.cfg.DupShare+r.cfg.RepeatShare && len(r.accUsers) > 0:
		p.user = r.accUsers[r.rnd.IntN(len(r.accUsers))]
	default:
		p.user = r.cfg.UserPrefix + strconv.Itoa(r.fresh%r.cfg.Users)
		r.fresh++
	}
	r.keySeq++
	p.key = r.cfg.RunID + "-" + strconv.Itoa(r.keySeq)
	if len(r.recent) < cap(r.recent) {
		r.recent = append(r.recent, p)
	} else {
		r.recent[r.recentNext] = p
		r.recentNext = (r.recentNext + 1) % len(r.recent)
	}
	return p
}

// record books one answer.
func (r *runner) record(p pick, status int, body []byte, err error, lat time.Duration) {
	at := time.Now()
	us := lat.Microseconds()
	if us < 1 {
		us = 1
	}
	var answer string
	var id string
	switch {
	case err != nil:
		answer = "net_error"
	case status/100 == 2:
		id = jsonField(body, "order_id")
		answer = strconv.Itoa(status)
	case status/100 == 4:
		answer = strconv.Itoa(status) + " " + jsonField(body, "error")
	default:
		answer = strconv.Itoa(status)
	}
	if r.book(p, status, body, err, answer, id, us) && r.cfg.OnAccepted != nil {
		deadline, _ := time.Parse(time.RFC3339Nano, jsonField(body, "pay_deadline"))
		r.cfg.OnAccepted(id, at, deadline)
	}
}

// book counts one answer under the lock; true for a new order.
func (r *runner) book(p pick, status int, body []byte, err error, answer, id string, us int64) (isNew bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = r.hist.RecordValue(us)
	_ = r.sec.RecordValue(us)
	r.counts.Sent++
	r.byAnswer[answer]++
	switch {
	case err != nil:
		r.counts.NetError++
		if r.sampleErr == "" {
			r.sampleErr = err.Error()
		}
	case status/100 == 2 && id != "":
		r.accepted.Add(1)
		if r.ids[id] {
			r.counts.Replayed++
		} else {
			r.ids[id] = true
			r.idList = append(r.idList, id)
			r.counts.Accepted++
			r.accUsers = append(r.accUsers, p.user)
			isNew = true
		}
	case status == http.StatusConflict && answer == "409 sold_out":
		r.counts.SoldOut++
	case status == http.StatusConflict && answer == "409 limit_exceeded":
		r.counts.LimitExceeded++
	case status/100 == 4 || status/100 == 2:
		r.counts.ClientError++
		if r.sampleErr == "" {
			r.sampleErr = fmt.Sprintf("%d %s", status, body)
		}
	case status == http.StatusServiceUnavailable:
		r.counts.Unavailable++
	default:
		r.counts.ServerError++
		if r.sampleErr == "" {
			r.sampleErr = fmt.Sprintf("%d %s", status, body)
		}
	}
	return isNew
}

// take reserves the next request slot; false when the run is over.
func (r *runner) take(deadline time.Time) bool {
	if r.cfg.Duration > 0 && !time.Now().Before(deadline) {
		return false
	}
	n := r.issued.Add(1)
	return r.cfg.Requests <= 0 || n <= int64(r.cfg.Requests)
}

// job is one open-loop arrival.
type job struct{ at time.Time }

func (r *runner) run(ctx context.Context, progress io.Writer) *Result {
	deadline := r.start.Add(r.cfg.Duration)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timeline []Second
	progDone := make(chan struct{})
	go func() {
		defer close(progDone)
		timeline = r.progress(ctx, progress)
	}()

	var wg sync.WaitGroup
	const path = "/api/v1/orders"
	send := func(c *conn, buf []byte, from time.Time) []byte {
		p := r.next()
		buf = postRequest(buf, r.cfg.OrderAddr, path, p.key, r.body(p.user))
		status, body, err := c.do(buf, r.cfg.Timeout)
		r.record(p, status, body, err, time.Since(from))
		return buf
	}
	mode := "closed"
	if r.cfg.Rate > 0 {
		mode = "open"
		jobs := make(chan job, 1<<16)
		for range r.cfg.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := newConn(r.cfg.OrderAddr)
				defer c.close()
				var buf []byte
				for j := range jobs {
					buf = send(c, buf, j.at)
				}
			}()
		}
		interval := time.Duration(float64(time.Second) / r.cfg.Rate)
		i := int64(0)
	schedule:
		for {
			now := time.Now()
			for at := r.start.Add(time.Duration(i) * interval); !at.After(now); at = r.start.Add(time.Duration(i) * interval) {
				if !r.take(deadline) || ctx.Err() != nil {
					break schedule
				}
				select {
				case jobs <- job{at: at}:
				case <-ctx.Done():
					break schedule
				}
				i++
			}
			time.Sleep(500 * time.Microsecond)
		}
		close(jobs)
	} else {
		for range r.cfg.Conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := newConn(r.cfg.OrderAddr)
				defer c.close()
				var buf []byte
				for ctx.Err() == nil && r.take(deadline) {
					buf = send(c, buf, time.Now())
				}
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(r.start)
	cancel()
	<-progDone

	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Config: r.cfg, Mode: mode, Started: r.start, Elapsed: elapsed, Counts: r.counts,
		ByAnswer: r.byAnswer, Timeline: timeline, AcceptedIDs: r.idList, SampleError: r.sampleErr,
	}
	secs := elapsed.Seconds()
	res.SentPerSec = float64(r.counts.Sent) / secs
	res.AccPerSec = float64(r.counts.Accepted+r.counts.Replayed) / secs
	res.Latency = summarize(r.hist)
	sort.Strings(res.AcceptedIDs)
	return res
}

func summarize(h *hdrhistogram.Histogram) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000,
	}
}

// progress prints one line a second and returns the per-second timeline.
func (r *runner) progress(ctx context.Context, w io.Writer) []Second {
	var out []Second
	var last Counts
	t := time.NewTicker(time.Second)
	defer t.Stop()
	tick := func() {
		r.mu.Lock()
		c := r.counts
		p99 := float64(r.sec.ValueAtQuantile(99)) / 1000
		r.sec.Reset()
		r.mu.Unlock()
		s := Second{
			T:        time.Since(r.start).Seconds(),
			Sent:     c.Sent - last.Sent,
			Accepted: c.Accepted + c.Replayed - last.Accepted - last.Replayed,
			SoldOut:  c.SoldOut - last.SoldOut,
			Errors:   c.Errors() - last.Errors(),
			P99:      p99,
		}
		last = c
		out = append(out, s)
		if w != nil {
			fmt.Fprintf(w, "%6.1fs  rate %6d/s  accepted %8d  sold_out %8d  limit %6d  errors %5d  p99 %7.2f ms\n",
				s.T, s.Sent, c.Accepted, c.SoldOut, c.LimitExceeded, c.Errors(), p99)
		}
	}
	for {
		select {
		case <-t.C:
			tick()
		case <-ctx.Done():
			tick()
			return out
		}
	}
}
