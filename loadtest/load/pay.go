package load

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// PayConfig is how a Payer pays.
type PayConfig struct {
	URL     string  // payment-service base URL, http://host:port
	Share   float64 // share of the accepted orders paid (0..1), spread evenly over them
	Workers int     // pays in flight at most (default 32)
	// RetryFor is how long after its 202 an order is still retried while
	// payment-service answers 404 (it does not know the order), 5xx or
	// nothing (default 30 s).
	RetryFor time.Duration
	Timeout  time.Duration // per request (default 10 s)
}

// PayResult counts the payments and how soon each order was payable.
type PayResult struct {
	Chosen int64 `json:"chosen"` // orders chosen to be paid
	Paid   int64 `json:"paid"`   // 200 paid
	// Late is 409 order_closed: the deadline had passed (the pay itself
	// expired the order) or inventory refused the order. LateBeforeDeadline
	// are those answered before the pay_deadline the 202 gave (a refusal, or
	// clocks apart).
	Late               int64 `json:"late"`
	LateBeforeDeadline int64 `json:"late_before_deadline"`
	Unknown            int64 `json:"unknown"`       // still 404 or unanswered RetryFor after the 202
	Failed             int64 `json:"failed"`        // any other answer
	NotFound           int64 `json:"not_found_404"` // 404 answers (retried)
	Retries            int64 `json:"retries_5xx"`   // 5xx answers and failed requests (retried)
	// TimeToPayable is, per paid or refused order, the time from its 202 to
	// the first decision on its pay (200 or 409): neither a 404 (order not
	// known yet) nor a 5xx (retry) counts as payable. FirstTry is the time
	// from the 202 to sending the first pay: the payers' own queueing, in
	// TimeToPayable too.
	TimeToPayable Latency       `json:"time_to_payable"`
	FirstTry      Latency       `json:"first_try"`
	Took          time.Duration `json:"took_ns"` // from the first order offered to the last answer
	Sample        string        `json:"sample_error,omitempty"`
	PaidIDs       []string      `json:"-"` // sorted
}

// accepted is an order offered to the payers.
type accepted struct {
	id           string
	at, deadline time.Time
}

// Payer pays a share of the accepted orders right after their 202, while
// the load runs: Offer every new order, then Wait.
type Payer struct {
	cfg     PayConfig
	addr    string
	path    string
	ch      chan accepted
	offered atomic.Int64
	wg      sync.WaitGroup
	start   time.Time

	mu       sync.Mutex
	res      PayResult
	payable  *hdrhistogram.Histogram
	firstTry *hdrhistogram.Histogram
}

// NewPayer starts cfg.Workers payers; they stop when ctx is done or after
// Wait.
func NewPayer(ctx context.Context, cfg PayConfig) (*Payer, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("payment URL %q: want http://host:port", cfg.URL)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 32
	}
	if cfg.RetryFor <= 0 {
		cfg.RetryFor = 30 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	p := &Payer{
		cfg: cfg, addr: u.Host, path: u.Path + "/api/v1/payments/",
		ch:       make(chan accepted, 1<<16),
		payable:  hdrhistogram.New(1, 600_000_000, 3), // 1 µs .. 10 min
		firstTry: hdrhistogram.New(1, 600_000_000, 3),
	}
	for range cfg.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			c := newConn(p.addr)
			defer c.close()
			var buf []byte
			for a := range p.ch {
				if ctx.Err() != nil {
					continue // drain the queue without paying
				}
				buf = p.pay(ctx, c, buf, a)
			}
		}()
	}
	return p, nil
}

// Offer hands the payers an order just answered 202 at at with its
// pay_deadline; it is paid if it falls in the share. It blocks only when
// 65,536 chosen orders wait for a payer. Offer must not be called after Wait.
func (p *Payer) Offer(orderID string, at, deadline time.Time) {
	i := p.offered.Add(1) - 1
	if i == 0 {
		p.mu.Lock()
		p.start = at
		p.mu.Unlock()
	}
	if int(float64(i+1)*p.cfg.Share) == int(float64(i)*p.cfg.Share) {
		return
	}
	p.mu.Lock()
	p.res.Chosen++
	p.mu.Unlock()
	p.ch <- accepted{id: orderID, at: at, deadline: deadline}
}

// Wait ends the intake, waits for every chosen order's pay and returns the
// result. Call it once.
func (p *Payer) Wait() PayResult {
	close(p.ch)
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	res := p.res
	res.TimeToPayable, res.FirstTry = summarize(p.payable), summarize(p.firstTry)
	if !p.start.IsZero() {
		res.Took = time.Since(p.start)
	}
	res.PaidIDs = slices.Sorted(slices.Values(res.PaidIDs)) // never nil: none paid is a record too
	return res
}

// pay pays one order: retried while the answer is 404, 5xx or none, up to
// RetryFor after its 202.
func (p *Payer) pay(ctx context.Context, c *conn, buf []byte, a accepted) []byte {
	sent := time.Now()
	p.record(func(*PayResult) { _ = p.firstTry.RecordValue(micros(sent.Sub(a.at))) })
	backoff := 20 * time.Millisecond
	for {
		buf = postRequest(buf, p.addr, p.path+a.id, "", nil)
		st, body, err := c.do(buf, p.cfg.Timeout)
		now := time.Now()
		retry := now.Before(a.at.Add(p.cfg.RetryFor)) && ctx.Err() == nil
		switch {
		case err == nil && (st == http.StatusOK || st == http.StatusConflict):
			p.record(func(r *PayResult) {
				_ = p.payable.RecordValue(micros(now.Sub(a.at)))
				if st == http.StatusOK {
					r.Paid++
					r.PaidIDs = append(r.PaidIDs, a.id)
					return
				}
				r.Late++
				if now.Before(a.deadline) {
					r.LateBeforeDeadline++
				}
			})
			return buf
		case err == nil && st == http.StatusNotFound:
			p.record(func(r *PayResult) { r.NotFound++ })
		case err != nil || st >= 500:
			p.record(func(r *PayResult) {
				r.Retries++
				if r.Sample == "" {
					r.Sample = answer(st, body, err)
				}
			})
		default:
			p.record(func(r *PayResult) {
				r.Failed++
				if r.Sample == "" {
					r.Sample = answer(st, body, err)
				}
			})
			return buf
		}
		if !retry {
			p.record(func(r *PayResult) { r.Unknown++ })
			return buf
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}

func (p *Payer) record(f func(*PayResult)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(&p.res)
}

func answer(status int, body []byte, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%d %s", status, body)
}

func micros(d time.Duration) int64 { return max(1, d.Microseconds()) }

// Pay pays share of ids (already accepted) on payment-service at baseURL
// with workers in parallel, each retried while answered 404, 5xx or
// nothing until deadline, and returns the result: the batch form of Payer
// for a caller that pays after its load (e2e TestConsole). Time to payable
// then counts from this call, not from the 202s.
func Pay(ctx context.Context, baseURL string, ids []string, share float64, workers int, deadline time.Time) PayResult {
	p, err := NewPayer(ctx, PayConfig{URL: baseURL, Share: share, Workers: workers, RetryFor: max(time.Until(deadline), time.Millisecond)})
	if err != nil {
		return PayResult{Sample: err.Error()}
	}
	now := time.Now()
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		p.Offer(id, now, time.Time{})
	}
	return p.Wait()
}
