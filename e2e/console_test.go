package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"seckill/e2e/internal/stack"
	"seckill/loadtest/load"
)

// TestConsole opens the sale console in headless Chromium while a small load
// runs and checks, several times, that every number the page shows lies
// between the services' own answers (/metrics, the product and order-count
// APIs) read just before and just after the page's board, whose read is at
// most a second old. Then the load stops and the rates must fall to 0; then
// logistics-service is stopped and the page, reloaded too, must still load
// and say that it is down. A screenshot of the page under load is written
// to $E2E_CONSOLE_PNG when set (docs/console.png is made that way), else
// to the log directory.
//
// Chromium is Debian's chromium package (CHROMIUM names another binary);
// the test fails when it is missing.
func TestConsole(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end console test (builds and starts the whole system and a browser); skipped under -short")
	}
	chromium := findChromium(t)
	bin := stack.Build(t)
	consoleBin := stack.BuildConsole(t, bin)
	s := stack.Start(t, bin, stack.Options{PayTimeoutLevel: 3, ConsumeRate: 60}) // 10 s pay timeout
	product := fmt.Sprintf("console-%d", time.Now().UnixNano())
	const stock = 500
	if err := load.PutSale(t.Context(), s.Inventory.URL, s.AdminToken, product,
		load.Sale{Name: "console test", PriceCents: 999, Stock: stock, PerUserLimit: 1}); err != nil {
		t.Fatal(err)
	}
	c := s.StartConsole(t, consoleBin)
	page := openPage(t, chromium, c.URL)

	run, err := load.Start(t.Context(), load.Config{
		OrderAddr: s.Order.Addr, ProductID: product, Rate: 120, Conns: 16,
		Users: 800, RepeatShare: 0.1, DupShare: 0.05, Duration: 10 * time.Second, Seed: 3,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *load.Result, 1)
	go func() { done <- run.Wait() }()
	var res *load.Result
	var sawRate, shot bool
	for round := 1; res == nil || round <= 3; round++ {
		b := page.compare(t, s, product)
		sawRate = sawRate || b.acceptedPerS > 0
		if !shot && b.soldOut > 0 {
			// The moment the sale sells out: both rates, lag building up.
			page.screenshot(t, s)
			shot = true
		}
		select {
		case res = <-done:
		default:
		}
	}
	t.Logf("load: %+v", res.Counts)
	if res.Counts.Accepted == 0 || res.Counts.SoldOut == 0 || res.Counts.LimitExceeded == 0 {
		t.Errorf("load counts %+v: want accepted, sold-out and limit answers", res.Counts)
	}
	if !sawRate {
		t.Errorf("the page never showed accepted/s > 0 during the load")
	}
	if !shot {
		t.Errorf("the page never showed a sold-out rejection during the load")
		page.screenshot(t, s)
	}

	// Pay half of the accepted orders, so paid and closed both move, and
	// compare again while the groups drain.
	paid := load.Pay(t.Context(), s.Payment.URL, res.AcceptedIDs, 0.5, 8, time.Now().Add(15*time.Second))
	t.Logf("pay: %+v", paid)
	page.compare(t, s, product)
	page.waitText(t, "front.accepted.per_s", func(v string) bool { return v == "0.0" }, "accepted/s back to 0.0 after the load")
	page.compare(t, s, product)

	// A service down: the page says so, and a reload still loads.
	if _, err := s.Logistics.Stop(); err != nil {
		t.Fatalf("stop logistics: %v", err)
	}
	for _, reload := range []bool{false, true} {
		if reload {
			if _, err := chromedp.Run(page.ctx, chromedp.Reload()); err != nil {
				t.Fatalf("reload: %v", err)
			}
		}
		page.waitText(t, "service.logistics", func(v string) bool { return v == "logistics down" }, "logistics shown down")
		banner := page.eval(t, `document.getElementById("down").hidden ? "" : document.getElementById("down").textContent`)
		if !strings.Contains(banner, "logistics-service is down") {
			t.Errorf("banner = %q, want it to name logistics-service as down", banner)
		}
		r := page.read(t)
		if got := r.Vals["service.order"]; got != "order up" {
			t.Errorf("service.order = %q with logistics down, want %q", got, "order up")
		}
		if got := r.Vals["product."+product+".stock"]; got != strconv.Itoa(stock) {
			t.Errorf("product stock = %q with logistics down (reload %v), want %d", got, reload, stock)
		}
		if got := r.Vals["group.GID-logistics.service"]; got != "logistics (down)" {
			t.Errorf("group.GID-logistics.service = %q, want %q", got, "logistics (down)")
		}
	}
	if err := s.Logistics.Restart(time.Minute); err != nil {
		t.Fatalf("restart logistics: %v", err)
	}
	page.waitText(t, "service.logistics", func(v string) bool { return v == "logistics up" }, "logistics back up")
	page.checkConsole(t)
}

// findChromium returns the Chromium binary: $CHROMIUM or chromium on PATH.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium not found (install Debian's package: apt-get install -y chromium, or set CHROMIUM): %v", err)
	}
	return p
}

// page is the console open in a headless browser.
type page struct {
	ctx context.Context
	mu  sync.Mutex
	log []string // console messages of type error and exceptions
}

func openPage(t *testing.T, chromium, pageURL string) *page {
	t.Helper()
	// The network here is closed: without these flags Chromium stalls on
	// its background requests.
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900))
	t.Cleanup(cancel)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelCtx)
	p := &page{ctx: ctx}
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium %s: %v", chromium, err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" {
				p.mu.Lock()
				p.log = append(p.log, m.String())
				p.mu.Unlock()
			}
		}
	}()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(pageURL)); err != nil {
		t.Fatalf("open %s: %v", pageURL, err)
	}
	p.waitText(t, "service.order", func(v string) bool { return v == "order up" }, "the first board")
	return p
}

// checkConsole fails the test for any error the page's script logged.
func (p *page) checkConsole(t *testing.T) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.log {
		t.Errorf("page console: %s", m)
	}
}

// reading is what the page showed at one moment.
type reading struct {
	Seq  int               `json:"seq"`
	At   string            `json:"at"`   // the board's read time
	Vals map[string]string `json:"vals"` // data-k → text
}

func (p *page) read(t *testing.T) reading {
	t.Helper()
	js := `(() => { const v = {}; document.querySelectorAll("[data-k]").forEach(e => { v[e.dataset.k] = e.textContent; });
		return {seq: +document.body.dataset.seq, at: document.body.dataset.at || "", vals: v}; })()`
	r, err := chromedp.Run(p.ctx, chromedp.Evaluate[reading](js))
	if err != nil {
		t.Fatalf("read the page: %v", err)
	}
	return r
}

func (p *page) eval(t *testing.T, js string) string {
	t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// waitText waits up to 10 s for the text of data-k key to satisfy ok.
func (p *page) waitText(t *testing.T, key string, ok func(string) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = p.read(t).Vals[key]
		if ok(last) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("waiting for %s: %s = %q after 10 s", what, key, last)
}

// waitBoardAfter waits for the page to show a board read after t0.
func (p *page) waitBoardAfter(t *testing.T, t0 time.Time) reading {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := p.read(t)
		if at, err := time.Parse(time.RFC3339Nano, r.At); err == nil && !at.Before(t0) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page showed no board read after %s within 5 s (last at %q)", t0.Format(time.RFC3339Nano), r.At)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *page) screenshot(t *testing.T, s *stack.Stack) {
	t.Helper()
	png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := os.Getenv("E2E_CONSOLE_PNG")
	if path == "" {
		path = filepath.Join(s.LogDir, "console.png")
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("write screenshot: %v", err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// system is the services' own answers, all read between start and end.
type system struct {
	start   time.Time
	end     time.Time
	fams    map[string]map[string]*dto.MetricFamily // service → family name → family
	product struct {
		Stock, Available, Sold int64
	}
	orders map[string]int64 // order status → orders of the product
}

func readSystem(t *testing.T, s *stack.Stack, product string) system {
	t.Helper()
	ctx := t.Context()
	sys, err := readMetrics(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Inventory.Do(ctx, http.MethodGet, "/api/v1/products/"+product, nil, nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET product %s: %v %v", product, err, r)
	}
	if err := r.Decode(&sys.product); err != nil {
		t.Fatal(err)
	}
	r, err = s.Order.Do(ctx, http.MethodGet, "/api/v1/order-counts?product_id="+url.QueryEscape(product), nil, nil)
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("GET order counts: %v %v", err, r)
	}
	var counts struct {
		Products []struct {
			Counts map[string]int64 `json:"counts"`
		} `json:"products"`
	}
	if err := r.Decode(&counts); err != nil {
		t.Fatal(err)
	}
	sys.orders = map[string]int64{}
	if len(counts.Products) == 1 {
		sys.orders = counts.Products[0].Counts
	}
	sys.end = time.Now()
	return sys
}

// readMetrics reads and parses every service's /metrics.
func readMetrics(ctx context.Context, s *stack.Stack) (system, error) {
	sys := system{start: time.Now(), fams: map[string]map[string]*dto.MetricFamily{}}
	for _, svc := range s.Services() {
		r, err := svc.Do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil {
			return system{}, err
		}
		if r.Status != http.StatusOK {
			return system{}, fmt.Errorf("GET %s/metrics = %s", svc.Name, r)
		}
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(strings.NewReader(string(r.Body)))
		if err != nil {
			return system{}, fmt.Errorf("parse %s/metrics: %w", svc.Name, err)
		}
		sys.fams[svc.Name] = fams
	}
	return sys, nil
}

// gauges are the gauges the page shows, by the page's key: the outbox and
// the lag of every group that exports one.
func (sys system) gauges() map[string]float64 {
	out := map[string]float64{}
	if v, ok := sys.sum("order", "order_outbox_length", nil); ok {
		out["outbox.length"] = v
	}
	if v, ok := sys.sum("order", "order_outbox_oldest_age_seconds", nil); ok {
		out["outbox.age"] = v
	}
	for g, svc := range sys.groups() {
		if sel := (match{"group": {g}}); sys.has(svc, svc+"_consumer_lag", sel) {
			out["group."+g+".lag"], _ = sys.sum(svc, svc+"_consumer_lag", sel)
		}
	}
	return out
}

// sampleGauges reads the services' gauges every 100 ms until stop is
// closed, and returns every gauge's lowest and highest value seen. The
// services refresh them every 0.5 s (outbox) and 5 s (lag), so the samples
// see every value a gauge took meanwhile.
func sampleGauges(ctx context.Context, s *stack.Stack, stop <-chan struct{}) <-chan map[string][2]float64 {
	out := make(chan map[string][2]float64, 1)
	go func() {
		seen := map[string][2]float64{}
		for {
			if sys, err := readMetrics(ctx, s); err == nil {
				addRange(seen, sys.gauges())
			}
			select {
			case <-stop:
				out <- seen
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

func addRange(seen map[string][2]float64, values map[string]float64) {
	for k, v := range values {
		r, ok := seen[k]
		if !ok {
			r = [2]float64{v, v}
		}
		seen[k] = [2]float64{math.Min(r[0], v), math.Max(r[1], v)}
	}
}

// match selects samples: label → the values it may have.
type match map[string][]string

// sum adds the samples of family name of svc that match; ok is false when
// the family is absent.
func (sys system) sum(svc, name string, sel match) (float64, bool) {
	mf, ok := sys.fams[svc][name]
	if !ok {
		return 0, false
	}
	var total float64
	for _, m := range mf.GetMetric() {
		if !matches(m, sel) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		default:
			total += m.GetUntyped().GetValue()
		}
	}
	return total, true
}

// has reports whether family name of svc has a sample that matches.
func (sys system) has(svc, name string, sel match) bool {
	return slices.ContainsFunc(sys.fams[svc][name].GetMetric(), func(m *dto.Metric) bool { return matches(m, sel) })
}

func matches(m *dto.Metric, sel match) bool {
	for key, values := range sel {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == key && slices.Contains(values, l.GetValue()) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// groups maps every consumer group in the services' metrics to its service.
func (sys system) groups() map[string]string {
	out := map[string]string{}
	for svc, fams := range sys.fams {
		for _, suffix := range []string{"_messages_consumed_total", "_consumer_lag"} {
			for _, m := range fams[svc+suffix].GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "group" {
						out[l.GetValue()] = svc
					}
				}
			}
		}
	}
	return out
}

type compared struct{ acceptedPerS, soldOut float64 }

// compare reads the system, waits for the page to show a board read after
// that, reads the page and the system again, and checks every number of
// the page against the two readings around it.
func (p *page) compare(t *testing.T, s *stack.Stack, product string) compared {
	t.Helper()
	before := readSystem(t, s, product)
	stop := make(chan struct{})
	sampled := sampleGauges(t.Context(), s, stop)
	// The board must be read after the first reading ended and shown
	// before the second began: then each of its numbers was read between
	// the two readings' numbers.
	r := p.waitBoardAfter(t, before.end)
	after := readSystem(t, s, product)
	close(stop)
	gaugeRange := <-sampled
	addRange(gaugeRange, before.gauges())
	addRange(gaugeRange, after.gauges())
	at, _ := time.Parse(time.RFC3339Nano, r.At)
	t.Logf("board #%d read %s after the first reading ended; the second began %s after the board",
		r.Seq, at.Sub(before.end).Round(time.Millisecond), after.start.Sub(at).Round(time.Millisecond))
	// The console reads every second, so its next board is read within a
	// second of the first reading (plus the scheduling slack of a busy box).
	if d := at.Sub(before.end); d > 1500*time.Millisecond {
		t.Errorf("the page's board was read %s after the first reading, want within a second (one interval)", d)
	}
	if d := after.start.Sub(at); d > 3*time.Second {
		t.Errorf("the page showed its board %s after reading it, want within a few seconds", d)
	}

	num := func(key string) (float64, bool) {
		v, ok := r.Vals[key]
		if !ok {
			t.Errorf("the page has no %s", key)
			return 0, false
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimPrefix(v, "> "), ",", ""), 64)
		if err != nil {
			t.Errorf("%s = %q, want a number", key, v)
			return 0, false
		}
		return f, true
	}
	// between checks that the page's key lies between the two readings.
	between := func(key string, lo, hi float64) {
		t.Helper()
		v, ok := num(key)
		if !ok {
			return
		}
		// The page shows the outbox age to 0.1 s, everything else whole.
		tol := 0.0
		if key == "outbox.age" {
			tol = 0.05
		}
		if v < math.Min(lo, hi)-tol || v > math.Max(lo, hi)+tol {
			t.Errorf("%s = %v on the page, want between %v (before) and %v (after)", key, v, lo, hi)
		}
	}
	metric := func(key, svc, name string, sel match) {
		t.Helper()
		lo, ok1 := before.sum(svc, name, sel)
		hi, ok2 := after.sum(svc, name, sel)
		switch {
		case !ok2:
			if v := r.Vals[key]; v != "n/a" {
				t.Errorf("%s = %q, want n/a: %s has no %s", key, v, svc, name)
			}
		case !ok1 && r.Vals[key] == "n/a":
			// The metric appeared between the readings, after the board's read.
		default:
			between(key, lo, hi) // lo is 0 when the metric appeared meanwhile
		}
	}

	for _, svc := range []string{"order", "inventory", "payment", "logistics"} {
		if got, want := r.Vals["service."+svc], svc+" up"; got != want {
			t.Errorf("service.%s = %q, want %q", svc, got, want)
		}
	}
	if got := r.Vals["service.broker"]; got != "broker up" {
		t.Errorf("service.broker = %q, want broker up", got)
	}
	result := func(values ...string) match { return match{"result": values} }
	metric("front.accepted.total", "order", "order_requests_total", result("accepted"))
	metric("front.replayed.total", "order", "order_requests_total", result("replayed"))
	metric("front.rejected.sold out.total", "order", "order_requests_total", result("sold_out"))
	metric("front.rejected.limit.total", "order", "order_requests_total", result("limit_exceeded"))
	metric("front.rejected.invalid.total", "order", "order_requests_total", result("invalid", "unknown_product"))
	metric("front.rejected.unavailable.total", "order", "order_requests_total", result("unavailable", "rebuilding", "backpressure"))
	// Gauges go up and down: the page's value must be one the services
	// showed between the two readings.
	for _, key := range []string{"outbox.length", "outbox.age"} {
		if _, ok := gaugeRange[key]; !ok && r.Vals[key] != "n/a" {
			t.Errorf("%s = %q, want n/a: order-service does not export it", key, r.Vals[key])
		}
	}
	for key, rg := range gaugeRange {
		between(key, rg[0], rg[1])
	}

	groups := before.groups()
	if len(groups) < 6 {
		t.Errorf("the services export %d consumer groups (%v), want every group of the system", len(groups), groups)
	}
	for g, svc := range groups {
		if got := r.Vals["group."+g+".service"]; got != svc {
			t.Errorf("group %s: service on the page %q, want %q", g, got, svc)
			continue
		}
		// A group that has consumed nothing has no consumed samples (the
		// family may be absent): the page shows 0, and sum gives 0.
		consumed := svc + "_messages_consumed_total"
		count := func(key string, sel match) {
			lo, _ := before.sum(svc, consumed, sel)
			hi, _ := after.sum(svc, consumed, sel)
			between(key, lo, hi)
		}
		count("group."+g+".consumed.total", match{"group": {g}})
		count("group."+g+".retries", match{"group": {g}, "result": {"retry"}})
		count("group."+g+".dlq", match{"group": {g}, "result": {"dlq"}})
		if _, ok := gaugeRange["group."+g+".lag"]; !ok && r.Vals["group."+g+".lag"] != "–" {
			t.Errorf("group.%s.lag = %q, want – (the group exports no lag: broadcasting)", g, r.Vals["group."+g+".lag"])
		}
	}

	pk := func(f string) string { return "product." + product + "." + f }
	between(pk("stock"), float64(before.product.Stock), float64(after.product.Stock))
	between(pk("sold"), float64(before.product.Sold), float64(after.product.Sold))
	between(pk("available"), float64(before.product.Available), float64(after.product.Available))
	paid := func(sys system) float64 { return float64(sys.orders["paid"] + sys.orders["shipped"]) }
	between(pk("paid"), paid(before), paid(after))
	between(pk("shipped"), float64(before.orders["shipped"]), float64(after.orders["shipped"]))
	between(pk("closed"), float64(before.orders["closed"]), float64(after.orders["closed"]))
	// Pending goes up (persisted) and down (paid, closed): its sum with the
	// others only goes up.
	persisted := func(sys system) float64 {
		return float64(sys.orders["created"]) + paid(sys) + float64(sys.orders["closed"])
	}
	if pend, ok1 := num(pk("pending")); ok1 {
		pd, _ := num(pk("paid"))
		cl, _ := num(pk("closed"))
		if v := pend + pd + cl; v < persisted(before) || v > persisted(after) {
			t.Errorf("pending+paid+closed = %v on the page, want between %v and %v", v, persisted(before), persisted(after))
		}
	}

	var c compared
	c.acceptedPerS, _ = num("front.accepted.per_s")
	c.soldOut, _ = num("front.rejected.sold out.total")
	return c
}
