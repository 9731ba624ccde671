// Package drain watches the consumer groups of the services through their
// Prometheus /metrics: every second it reads each group's consumed count
// (<svc>_messages_consumed_total) and lag (<svc>_consumer_lag), keeps the
// series, and tells when every group has drained.
package drain

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Target is one service's metrics endpoint.
type Target struct {
	Service string `json:"service"`
	URL     string `json:"url"` // http://host:port/metrics
}

// Group is one consumer group at one sample.
type Group struct {
	Consumed float64 `json:"consumed"` // messages handled (every result)
	Rate     float64 `json:"rate"`     // consumed per second since the previous sample
	Lag      float64 `json:"lag"`      // -1 when the group reports none (broadcasting)
}

// Sample is every group at one moment.
type Sample struct {
	T        float64            `json:"t"`        // seconds since the watch's origin
	Accepted int64              `json:"accepted"` // front door 2xx so far (from the caller)
	Groups   map[string]Group   `json:"groups"`
	RSS      map[string]float64 `json:"rss_bytes"` // service -> process_resident_memory_bytes
}

// Watcher samples the targets every second until Stop.
type Watcher struct {
	targets  []Target
	origin   time.Time
	accepted func() int64
	client   *http.Client

	mu      sync.Mutex
	samples []Sample
	errs    int
	lastErr string

	cancel context.CancelFunc
	done   chan struct{}
}

// Watch starts sampling. origin is t=0 of the series; accepted (may be nil)
// gives the front door's running count of accepted orders.
func Watch(ctx context.Context, targets []Target, origin time.Time, accepted func() int64) *Watcher {
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{targets: targets, origin: origin, accepted: accepted, cancel: cancel, done: make(chan struct{}),
		client: &http.Client{Timeout: 2 * time.Second}}
	go func() {
		defer close(w.done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		w.sample(ctx)
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				w.sample(ctx)
			}
		}
	}()
	return w
}

// Stop ends the sampling and returns the series.
func (w *Watcher) Stop() []Sample {
	w.cancel()
	<-w.done
	return w.Samples()
}

// Samples returns a copy of the series so far.
func (w *Watcher) Samples() []Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Sample(nil), w.samples...)
}

// Errors returns how many scrapes failed and the last error.
func (w *Watcher) Errors() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.errs, w.lastErr
}

func (w *Watcher) sample(ctx context.Context) {
	s := Sample{T: time.Since(w.origin).Seconds(), Groups: map[string]Group{}, RSS: map[string]float64{}}
	if w.accepted != nil {
		s.Accepted = w.accepted()
	}
	var scrapeErr error
	for _, t := range w.targets {
		if err := w.scrape(ctx, t, s.Groups, s.RSS); err != nil {
			scrapeErr = err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if scrapeErr != nil {
		w.errs++
		w.lastErr = scrapeErr.Error()
	}
	if n := len(w.samples); n > 0 {
		prev := w.samples[n-1]
		dt := s.T - prev.T
		for g, v := range s.Groups {
			if p, ok := prev.Groups[g]; ok && dt > 0 {
				v.Rate = math.Max(0, (v.Consumed-p.Consumed)/dt)
				s.Groups[g] = v
			}
		}
	}
	w.samples = append(w.samples, s)
}

func (w *Watcher) scrape(ctx context.Context, t Target, into map[string]Group, rss map[string]float64) error {
	body, err := get(ctx, w.client, t.URL)
	if err != nil {
		return fmt.Errorf("scrape %s: %w", t.Service, err)
	}
	defer body.Close()
	var proc processMetrics
	if err := parse(body, into, &proc); err != nil {
		return err
	}
	if proc.rss > 0 {
		rss[t.Service] = proc.rss
	}
	return nil
}

type processMetrics struct{ rss float64 }

// Parse adds the consumer-group series of a Prometheus text exposition to
// into: *_messages_consumed_total (summed over topic and result) and
// *_consumer_lag, by group label.
func Parse(r io.Reader, into map[string]Group) error {
	return parse(r, into, nil)
}

func parse(r io.Reader, into map[string]Group, proc *processMetrics) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seenLag := map[string]bool{}
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		brace := bytes.IndexByte(line, '{')
		if brace < 0 {
			if proc != nil && bytes.HasPrefix(line, []byte("process_resident_memory_bytes ")) {
				if f := strings.Fields(string(line)); len(f) == 2 {
					proc.rss, _ = strconv.ParseFloat(f[1], 64)
				}
			}
			continue
		}
		name := string(line[:brace])
		consumed := strings.HasSuffix(name, "_messages_consumed_total")
		lag := strings.HasSuffix(name, "_consumer_lag")
		if !consumed && !lag {
			continue
		}
		end := bytes.LastIndexByte(line, '}')
		if end < brace {
			continue
		}
		group := label(line[brace+1:end], "group")
		fields := strings.Fields(string(line[end+1:]))
		if group == "" || len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		g, ok := into[group]
		if !ok {
			g.Lag = -1
		}
		if consumed {
			g.Consumed += v
		} else {
			if seenLag[group] {
				g.Lag = math.Max(g.Lag, v)
			} else {
				g.Lag = v
			}
			seenLag[group] = true
		}
		into[group] = g
	}
	return sc.Err()
}

func label(labels []byte, name string) string {
	key := []byte(name + `="`)
	i := bytes.Index(labels, key)
	if i < 0 {
		return ""
	}
	rest := labels[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return string(rest[:j])
}

// Drained reports whether, over the last window of samples, every group that
// reports a lag had lag 0 and no group's consumed count moved (the lag gauge
// is refreshed every 5 s, so window should cover more than that). The string
// says what is still moving.
func Drained(samples []Sample, window time.Duration) (bool, string) {
	if len(samples) == 0 {
		return false, "no samples yet"
	}
	last := samples[len(samples)-1]
	if len(last.Groups) == 0 {
		return false, "no consumer groups in /metrics"
	}
	var busy []string
	for g, v := range last.Groups {
		if v.Lag > 0 {
			busy = append(busy, fmt.Sprintf("%s lag %.0f", g, v.Lag))
		}
	}
	first := -1
	for i := len(samples) - 1; i >= 0; i-- {
		if last.T-samples[i].T >= window.Seconds() {
			first = i
			break
		}
	}
	if first < 0 {
		busy = append(busy, "watching for "+window.String())
	} else {
		for g, v := range last.Groups {
			if p, ok := samples[first].Groups[g]; !ok || p.Consumed != v.Consumed {
				busy = append(busy, fmt.Sprintf("%s consuming (%.0f/s)", g, v.Rate))
			}
			for _, s := range samples[first:] {
				if s.Groups[g].Lag > 0 {
					busy = append(busy, g+" lag in window")
					break
				}
			}
		}
	}
	sort.Strings(busy)
	return len(busy) == 0, strings.Join(busy, ", ")
}

// Groups returns the group names in the series, sorted.
func Groups(samples []Sample) []string {
	seen := map[string]bool{}
	for _, s := range samples {
		for g := range s.Groups {
			seen[g] = true
		}
	}
	out := make([]string, 0, len(seen))
	for g := range seen {
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// DrainRate is a group's best average consumed/s over any window of the
// given length in which the group had a backlog at every sample (lag > 0):
// the rate its throttle lets through. A group that keeps up with its input
// (no backlog for a whole window) is not throttled and has no drain rate.
// n is the number of windows looked at (0 when the series is shorter than
// the window or the group never had a backlog that long).
func DrainRate(samples []Sample, group string, window time.Duration) (rate float64, n int) {
	j := 0
	for i := range samples {
		for j < len(samples) && samples[j].T-samples[i].T < window.Seconds() {
			j++
		}
		if j == len(samples) {
			break
		}
		backlogged := true
		for k := i; k <= j && backlogged; k++ {
			g, ok := samples[k].Groups[group]
			backlogged = ok && g.Lag > 0
		}
		if !backlogged {
			continue
		}
		a, b := samples[i].Groups[group], samples[j].Groups[group]
		n++
		rate = math.Max(rate, (b.Consumed-a.Consumed)/(samples[j].T-samples[i].T))
	}
	return rate, n
}

// Counter reads one counter of a /metrics endpoint: the value of each of
// its series by the value of the label by (a series without it under "").
func Counter(ctx context.Context, metricsURL, name, by string) (map[string]float64, error) {
	body, err := get(ctx, &http.Client{Timeout: 5 * time.Second}, metricsURL)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", metricsURL, err)
	}
	defer body.Close()
	return parseCounter(body, name, by)
}

// Probe reports whether url answers GET with 200 within 2 s.
func Probe(ctx context.Context, url string) error {
	body, err := get(ctx, &http.Client{Timeout: 2 * time.Second}, url)
	if err != nil {
		return err
	}
	return body.Close()
}

// get GETs url with client and returns the body of a 200 answer (the
// caller closes it); any other status is an error.
func get(ctx context.Context, client *http.Client, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.Body, nil
}

func parseCounter(r io.Reader, name, by string) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte(name))
		if !ok || len(rest) == 0 || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		key := ""
		if rest[0] == '{' {
			end := bytes.LastIndexByte(rest, '}')
			if end < 0 {
				continue
			}
			key, rest = label(rest[1:end], by), rest[end+1:]
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[key] += v
		}
	}
	return out, sc.Err()
}
