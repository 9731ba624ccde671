package board

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"seckill/console/internal/scrape"
	"seckill/pkg/mq"
)

// historyLen is how many boards' chart points the poller keeps: five
// minutes at the default interval.
const historyLen = 300

// Options configure a Poller.
type Options struct {
	Services     []Source // order, inventory, payment, logistics (Name is the metric prefix)
	InventoryURL string
	OrderURL     string
	MQ           mq.Config
	ConsumeRate  float64
	Interval     time.Duration
	Products     int // latest sales shown
}

// Poller reads the system every Interval and keeps the latest Board and a
// short history of chart points for the page.
type Poller struct {
	opts   Options
	client *scrape.Client
	log    *slog.Logger

	mu      sync.Mutex
	board   Board
	seq     int64
	history []Point
	subs    map[chan Board]struct{}
}

// NewPoller returns a poller; Run starts it.
func NewPoller(opts Options, client *scrape.Client, log *slog.Logger) *Poller {
	return &Poller{opts: opts, client: client, log: log, subs: map[chan Board]struct{}{}}
}

// Run polls until ctx is done; it reads once at once, then every Interval.
// A source that fails is shown as down; Run itself never fails.
func (p *Poller) Run(ctx context.Context) error {
	var prev *Scrape
	groups := map[string]string{}
	down := map[string]bool{} // what was down at the last read, to log changes once
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for {
		cur := p.read(ctx, groups)
		if ctx.Err() != nil {
			return nil
		}
		p.logChanges(ctx, cur, down)
		p.publish(Build(prev, cur, p.opts.ConsumeRate))
		prev = cur
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// read reads every source at once, each bounded by the interval. The
// broker probe reads the DLQ topics of the groups known before this read.
func (p *Poller) read(ctx context.Context, groups map[string]string) *Scrape {
	ctx, cancel := context.WithTimeout(ctx, max(p.opts.Interval*4/5, 500*time.Millisecond))
	defer cancel()
	s := &Scrape{At: time.Now(), NameSrv: strings.Join(p.opts.MQ.NameServers, ";"),
		Services: make([]ServiceScrape, len(p.opts.Services))}
	topics := BrokerTopics(groups)
	var wg sync.WaitGroup
	for i, src := range p.opts.Services {
		wg.Go(func() {
			start := time.Now()
			fams, err := p.client.Metrics(ctx, src.URL)
			s.Services[i] = ServiceScrape{Source: src, Families: fams, Err: err, Took: time.Since(start)}
		})
	}
	wg.Go(func() {
		s.Products, s.ProductsErr = p.client.Products(ctx, p.opts.InventoryURL, p.opts.Products)
		if s.ProductsErr != nil || len(s.Products) == 0 {
			return
		}
		// Orders of the shown sales only: those created since the oldest
		// of their starts.
		since := s.Products[0].SaleStartedAt
		ids := make([]string, 0, len(s.Products))
		for _, pr := range s.Products {
			ids = append(ids, pr.ProductID)
			if pr.SaleStartedAt.Before(since) {
				since = pr.SaleStartedAt
			}
		}
		s.Counts, s.CountsErr = p.client.OrderCounts(ctx, p.opts.OrderURL, since, ids)
	})
	wg.Go(func() {
		s.Broker, s.BrokerErr = scrape.ProbeBroker(ctx, p.opts.MQ, topics)
	})
	wg.Wait()
	DiscoverGroups(groups, s.Services)
	s.Groups = maps.Clone(groups)
	return s
}

// logChanges logs a source going down or coming back, once per change.
func (p *Poller) logChanges(ctx context.Context, s *Scrape, down map[string]bool) {
	check := func(name string, err error) {
		switch {
		case err != nil && !down[name]:
			p.log.WarnContext(ctx, "source down", "source", name, "err", err)
			down[name] = true
		case err == nil && down[name]:
			p.log.InfoContext(ctx, "source back", "source", name)
			delete(down, name)
		}
	}
	for _, sv := range s.Services {
		check(sv.Name+" metrics", sv.Err)
	}
	check("products", s.ProductsErr)
	check("order counts", s.CountsErr)
	check("broker", s.BrokerErr)
}

// publish stores b (numbered) and hands it to every subscriber; a
// subscriber that has not taken the previous board gets this one instead.
func (p *Poller) publish(b Board) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	b.Seq = p.seq
	p.board = b
	p.history = append(p.history, PointOf(b))
	if len(p.history) > historyLen {
		p.history = slices.Delete(p.history, 0, len(p.history)-historyLen)
	}
	for ch := range p.subs {
		select {
		case <-ch:
		default:
		}
		ch <- b
	}
}

// Latest returns the latest board; ok is false before the first read.
func (p *Poller) Latest() (Board, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.board, p.seq > 0
}

// History returns the chart points of the last boards, oldest first.
func (p *Poller) History() []Point {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Point(nil), p.history...)
}

// Subscribe returns a channel that receives every new board (the latest
// one first, when there is one) and a function that ends the subscription.
func (p *Poller) Subscribe() (<-chan Board, func()) {
	ch := make(chan Board, 1)
	p.mu.Lock()
	p.subs[ch] = struct{}{}
	if p.seq > 0 {
		ch <- p.board
	}
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.subs, ch)
		p.mu.Unlock()
	}
}

// Point is what the charts draw of one board.
type Point struct {
	At           time.Time           `json:"at"`
	AcceptedPerS *float64            `json:"accepted_per_s"`
	RejectedPerS *float64            `json:"rejected_per_s"`
	P99MS        *float64            `json:"p99_ms"`
	ConsumedPerS map[string]*float64 `json:"consumed_per_s"` // group → msg/s
	Lag          map[string]*float64 `json:"lag"`            // group → messages
}

// PointOf returns the chart point of b.
func PointOf(b Board) Point {
	pt := Point{At: b.At, AcceptedPerS: b.Front.Accepted.PerS, RejectedPerS: b.Front.RejectedPerS, P99MS: b.Front.P99MS,
		ConsumedPerS: map[string]*float64{}, Lag: map[string]*float64{}}
	for _, g := range b.Groups {
		pt.ConsumedPerS[g.Group] = g.Consumed.PerS
		pt.Lag[g.Group] = g.Lag
	}
	return pt
}
