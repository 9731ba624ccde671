// Command bench measures order intake side by side with the same load
// settings: a bare gin hello-world (the ceiling), order-service with
// ORDER_SEND_MODE=sync (one SendSync per request: the naive design) and the
// default outbox mode (optionally batch too). For each system mode it starts
// the embedded broker (or uses -namesrv) and the four services from -bin on
// fresh bench databases and a dedicated Redis database, creates a sale large
// enough never to sell out, runs a warm-up and the measured load, and stops
// everything. It prints a table and writes bench.json and bench.md to -out.
//
//	bench -bin bin -duration 10s -conns 64
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"seckill/loadtest/load"
	"seckill/loadtest/report"
)

type settings struct {
	bin, root, out, namesrv, mysqlDSN, redisAddr string
	redisDB, conns, portBase, rounds             int
	rate, consumeRate                            float64
	duration, warmup                             time.Duration
	modes                                        []string
}

// Row is one measured mode.
type Row struct {
	Mode      string             `json:"mode"`
	Round     int                `json:"round"`
	Result    *load.Result       `json:"result"`
	AccPerSec float64            `json:"accepted_per_s"`
	CPU       map[string]float64 `json:"cpu_seconds"` // process -> CPU seconds during the measured load
	RSSBefore map[string]int64   `json:"rss_kb_before"`
	RSSAfter  map[string]int64   `json:"rss_kb_after"`
	LoadAvg   string             `json:"loadavg_after"`
	Err       string             `json:"error,omitempty"`
	Took      time.Duration      `json:"took_ns"`
}

func main() {
	var s settings
	var modes string
	flag.StringVar(&s.bin, "bin", "bin", "directory with testbroker, order, payment, inventory, logistics and hello (make build + go build ./loadtest/cmd/hello)")
	flag.StringVar(&s.root, "root", ".", "repository root (for deploy/config)")
	flag.StringVar(&s.out, "out", ".bench", "directory for bench.json and bench.md")
	flag.StringVar(&s.namesrv, "namesrv", os.Getenv("ROCKETMQ_NAMESRV"), "use this RocketMQ name server instead of the embedded broker")
	flag.StringVar(&s.mysqlDSN, "mysql", "root@tcp(127.0.0.1:3306)/", "MariaDB server DSN (bench databases seckill_bench_<svc> are recreated)")
	flag.StringVar(&s.redisAddr, "redis", "127.0.0.1:6379", "Redis address")
	flag.IntVar(&s.redisDB, "redis-db", 13, "Redis database index for the services (flushed before each mode)")
	flag.IntVar(&s.conns, "conns", 64, "connections")
	flag.Float64Var(&s.rate, "rate", 0, "open loop arrivals/s (0 = closed loop)")
	flag.Float64Var(&s.consumeRate, "consume-rate", 200, "CONSUME_RATE of every service (msg/s per group); 1 holds the consumers back to measure the intake alone")
	flag.DurationVar(&s.duration, "duration", 10*time.Second, "measured load per mode")
	flag.DurationVar(&s.warmup, "warmup", 2*time.Second, "unmeasured load before each measurement")
	flag.IntVar(&s.portBase, "port-base", 18080, "order, payment, inventory, logistics listen on base..base+3, hello on base+10, the embedded broker on base+20/+21")
	flag.IntVar(&s.rounds, "rounds", 1, "run the modes this many times, interleaved (the table shows each run)")
	flag.StringVar(&modes, "modes", "hello,sync,outbox", "comma-separated: hello, sync, batch, outbox")
	flag.Parse()
	s.modes = strings.Split(modes, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintf(os.Stderr, "bench: %d CPUs, load average %s; %s per mode (+%s warm-up), %d conns\n",
		report.NewMachine().CPUs, report.LoadAvg(), s.duration, s.warmup, s.conns)
	var rows []*Row
	for round := 1; round <= s.rounds; round++ {
		for _, m := range s.modes {
			if ctx.Err() != nil {
				break
			}
			fmt.Fprintf(os.Stderr, "\n=== %s (round %d of %d) ===\n", m, round, s.rounds)
			r := runMode(ctx, s, strings.TrimSpace(m))
			r.Round = round
			if r.Err != "" {
				fmt.Fprintf(os.Stderr, "bench %s: %s\n", m, r.Err)
			}
			rows = append(rows, r)
		}
	}
	table := render(s, rows)
	fmt.Print(table)
	if err := os.MkdirAll(s.out, 0o755); err == nil {
		b, _ := json.MarshalIndent(map[string]any{"machine": report.NewMachine(), "rows": rows,
			"settings": map[string]any{"duration": s.duration.String(), "warmup": s.warmup.String(), "conns": s.conns, "rate": s.rate, "namesrv": s.namesrv}}, "", "  ")
		_ = os.WriteFile(filepath.Join(s.out, "bench.json"), b, 0o644)
		_ = os.WriteFile(filepath.Join(s.out, "bench.md"), []byte(table), 0o644)
	}
	for _, r := range rows {
		if r.Err != "" {
			os.Exit(1)
		}
	}
}

func render(s settings, rows []*Row) string {
	// Ratios are against the reference mode's run of the same round (modes
	// of a round run back to back; the box drifts between rounds), or the
	// median run when that round has none.
	sameRound := func(mode string, round int) float64 {
		for _, r := range rows {
			if r.Mode == mode && r.Round == round && r.Result != nil {
				return r.AccPerSec
			}
		}
		return 0
	}
	median := func(mode string) float64 {
		var v []float64
		for _, r := range rows {
			if r.Mode == mode && r.Result != nil {
				v = append(v, r.AccPerSec)
			}
		}
		if len(v) == 0 {
			return 0
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	naive, ceiling := median("sync"), median("hello")
	var b strings.Builder
	broker := "embedded broker"
	if s.namesrv != "" {
		broker = "RocketMQ at " + s.namesrv
	}
	loop := fmt.Sprintf("closed loop, %d conns", s.conns)
	if s.rate > 0 {
		loop = fmt.Sprintf("open loop at %.0f/s, up to %d in flight", s.rate, s.conns)
	}
	fmt.Fprintf(&b, "\n%s, %s, %s per mode after %s warm-up; %d CPUs, load average at the end %s\n\n",
		broker, loop, s.duration, s.warmup, report.NewMachine().CPUs, report.LoadAvg())
	b.WriteString("| mode | accepted/s | p50 ms | p99 ms | p99.9 ms | errors | × naive (sync) | % of ceiling | order-service CPU µs/req | broker CPU µs/req | load tool CPU µs/req | order RSS MB before→after |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.Result == nil {
			fmt.Fprintf(&b, "| %s | failed: %s |||||||||\n", r.Mode, r.Err)
			continue
		}
		l := r.Result
		ratio, pct := "–", "–"
		naive, ceiling := naive, ceiling
		if v := sameRound("sync", r.Round); v > 0 {
			naive = v
		}
		if v := sameRound("hello", r.Round); v > 0 {
			ceiling = v
		}
		if naive > 0 && r.Mode != "hello" {
			ratio = fmt.Sprintf("%.2f×", r.AccPerSec/naive)
		}
		if ceiling > 0 {
			pct = fmt.Sprintf("%.0f%%", 100*r.AccPerSec/ceiling)
		}
		perReq := func(p string) string {
			if c, ok := r.CPU[p]; ok && l.Counts.Sent > 0 {
				return fmt.Sprintf("%.0f", c*1e6/float64(l.Counts.Sent))
			}
			return "–"
		}
		main := "order"
		if r.Mode == "hello" {
			main = "hello"
		}
		rss := "–"
		if a, ok := r.RSSBefore[main]; ok {
			rss = fmt.Sprintf("%.0f→%.0f", float64(a)/1024, float64(r.RSSAfter[main])/1024)
		}
		name := r.Mode
		if s.rounds > 1 {
			name = fmt.Sprintf("%s #%d", r.Mode, r.Round)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %.2f | %.2f | %d | %s | %s | %s | %s | %s | %s |\n",
			name, r.AccPerSec, l.Latency.P50, l.Latency.P99, l.Latency.P999, l.Counts.Errors(), ratio, pct,
			perReq(main), perReq("testbroker"), perReq("load"), rss)
	}
	return b.String()
}

// proc is one started process.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

func start(name, bin string, args, env []string, logDir string) (*proc, error) {
	f, err := os.Create(filepath.Join(logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpu returns the process's user+system CPU seconds (Linux /proc).
func (p *proc) cpu() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100 // USER_HZ
}

// selfCPU returns this process's user+system CPU seconds (the load generator).
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// rss returns the process's resident set in kB.
func (p *proc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
			return n
		}
	}
	return 0
}

func waitHTTP(ctx context.Context, url string, p *proc, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("%s exited during start: %v", p.name, err)
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within %s", url, timeout)
}

func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runMode(ctx context.Context, s settings, mode string) *Row {
	row := &Row{Mode: mode, CPU: map[string]float64{}, RSSBefore: map[string]int64{}, RSSAfter: map[string]int64{}}
	begin := time.Now()
	defer func() { row.Took = time.Since(begin) }()
	logDir := filepath.Join(s.out, "logs", mode)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		row.Err = err.Error()
		return row
	}
	host := func(off int) string { return "127.0.0.1:" + strconv.Itoa(s.portBase+off) }
	var procs []*proc
	defer func() {
		// Services first, the broker last.
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
	}()
	env0 := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	// Go runtime settings reach every process, so runtime tuning can be
	// compared (e.g. GOGC=400 make bench).
	for _, k := range []string{"GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG"} {
		if v, ok := os.LookupEnv(k); ok {
			env0 = append(env0, k+"="+v)
		}
	}
	var target string
	product := "bench"

	if mode == "hello" {
		p, err := start("hello", filepath.Join(s.bin, "hello"), []string{"-addr", host(10)}, env0, logDir)
		if err != nil {
			row.Err = err.Error()
			return row
		}
		procs = append(procs, p)
		if err := waitHTTP(ctx, "http://"+host(10)+"/healthz", p, 20*time.Second); err != nil {
			row.Err = err.Error()
			return row
		}
		target = host(10)
	} else {
		if err := freshStores(ctx, s); err != nil {
			row.Err = err.Error()
			return row
		}
		namesrv := s.namesrv
		if namesrv == "" {
			namesrv = host(20)
			p, err := start("testbroker", filepath.Join(s.bin, "testbroker"),
				[]string{"-namesrv", namesrv, "-broker", host(21), "-topics", "ORDER:4,SOLDOUT:1,STOCK_LEDGER:1,ORDER_STATS:4", "-log-level", "warn"},
				env0, logDir)
			if err != nil {
				row.Err = err.Error()
				return row
			}
			procs = append(procs, p)
			if err := waitTCP(namesrv, 20*time.Second); err != nil {
				row.Err = "embedded broker: " + err.Error()
				return row
			}
		}
		cfg, _ := mysql.ParseDSN(s.mysqlDSN)
		token := "bench-token"
		for i, svc := range []string{"order", "payment", "inventory", "logistics"} {
			c := *cfg
			c.DBName = "seckill_bench_" + svc
			c.ParseTime = true
			c.Loc = time.UTC
			env := append(append([]string{}, env0...),
				"CONFIG_FILE="+filepath.Join(s.root, "deploy", "config", svc+".yaml"),
				"HTTP_ADDR="+host(i),
				"MYSQL_DSN="+c.FormatDSN(),
				"ROCKETMQ_NAMESRV="+namesrv,
				"CONSUME_RATE="+strconv.FormatFloat(s.consumeRate, 'f', -1, 64),
				"REDIS_ADDR="+s.redisAddr,
				"REDIS_DB="+strconv.Itoa(s.redisDB),
				"PAY_TIMEOUT_LEVEL=5",
				"ORDER_SEND_MODE="+mode,
				"ADMIN_TOKEN="+token,
			)
			p, err := start(svc, filepath.Join(s.bin, svc), nil, env, logDir)
			if err != nil {
				row.Err = err.Error()
				return row
			}
			procs = append(procs, p)
		}
		for i, p := range procs[len(procs)-4:] {
			if err := waitHTTP(ctx, "http://"+host(i)+"/healthz", p, 60*time.Second); err != nil {
				row.Err = err.Error() + " (logs in " + logDir + ")"
				return row
			}
		}
		err := load.PutSale(ctx, "http://"+host(2), token, product,
			load.Sale{Name: "bench", PriceCents: 999, Stock: 10_000_000, PerUserLimit: 1})
		if err != nil {
			row.Err = err.Error()
			return row
		}
		target = host(0)
	}

	cfg := load.Config{OrderAddr: target, ProductID: product, Rate: s.rate, Conns: s.conns,
		Users: 50_000_000, RunID: mode + "w", UserPrefix: "w"}
	if s.warmup > 0 {
		cfg.Duration = s.warmup
		run, err := load.Start(ctx, cfg, nil)
		if err == nil {
			run.Wait()
		}
	}
	byName := map[string]*proc{}
	for _, p := range procs {
		byName[p.name] = p
		row.CPU[p.name] = p.cpu()
		row.RSSBefore[p.name] = p.rss()
	}
	row.CPU["load"] = selfCPU()
	cfg.Duration = s.duration
	cfg.RunID, cfg.UserPrefix = mode+"m", "m" // other users than the warm-up's
	run, err := load.Start(ctx, cfg, os.Stderr)
	if err != nil {
		row.Err = err.Error()
		return row
	}
	res := run.Wait()
	row.CPU["load"] = selfCPU() - row.CPU["load"]
	for name, p := range byName {
		row.CPU[name] = p.cpu() - row.CPU[name]
		row.RSSAfter[name] = p.rss()
	}
	row.Result = res
	row.AccPerSec = res.AccPerSec
	row.LoadAvg = report.LoadAvg()
	if res.Counts.Accepted == 0 {
		row.Err = fmt.Sprintf("nothing accepted (first error: %s)", res.SampleError)
	}
	return row
}

// freshStores recreates the bench databases and flushes the bench Redis database.
func freshStores(ctx context.Context, s settings) error {
	db, err := sql.Open("mysql", s.mysqlDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, svc := range []string{"order", "payment", "inventory", "logistics"} {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS seckill_bench_"+svc); err != nil {
			return fmt.Errorf("drop bench database: %w", err)
		}
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.redisAddr, DB: s.redisDB})
	defer rdb.Close()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		return fmt.Errorf("flush redis db %d: %w", s.redisDB, err)
	}
	return nil
}
