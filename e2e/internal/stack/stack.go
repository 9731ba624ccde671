// Package stack runs the whole flash-sale system for end-to-end tests: the
// embedded broker (or a real RocketMQ named by ROCKETMQ_NAMESRV) and the four
// services as real processes, each on a fresh MariaDB database and all on a
// dedicated Redis database index. Everything is stopped, checked and dropped
// in t.Cleanup.
package stack

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options tune a stack. Zero values take the defaults.
type Options struct {
	// PayTimeoutLevel is the RocketMQ delay level of the pay timeout (default 3 = 10 s).
	PayTimeoutLevel int
	// DelayScale scales the embedded broker's delay levels (default 1 = real time).
	DelayScale float64
	// ConsumeRate is the msg/s of every consumer group (default 200).
	ConsumeRate int
	// Env is added to every service's environment (KEY=value), e.g. ORDER_SEND_MODE=batch.
	Env []string
	// ServiceEnv is added to one service's environment after Env, by
	// service name (order, payment, inventory, logistics); a later value of
	// a key wins, e.g. {"inventory": {"CONSUME_RATE=10"}}.
	ServiceEnv map[string][]string
	// ReadyTimeout bounds the wait for every /healthz (default 60 s).
	ReadyTimeout time.Duration
	// BrokerDataDir, when set, is the embedded broker's -data-dir, so a
	// restarted broker (RestartBroker) keeps its messages and offsets.
	BrokerDataDir string
	// MySQLAddr maps a service name to the host:port it reaches MariaDB at
	// instead of the server's own (e.g. a fault-injecting proxy).
	MySQLAddr map[string]string
	// RedisDB is the Redis database index of the services (0 = E2E_REDIS_DB,
	// default DefaultRedisDB). Test suites that may run at the same time as
	// another on this machine pick different indexes: the outbox stream and
	// sale keys have fixed names.
	RedisDB int
	// RedisAddr is the Redis of the services (default REDIS_ADDR, else
	// 127.0.0.1:6379), e.g. a private redis-server a test restarts.
	RedisAddr string
}

func (o *Options) defaults() {
	if o.PayTimeoutLevel == 0 {
		o.PayTimeoutLevel = 3
	}
	if o.DelayScale == 0 {
		o.DelayScale = 1
	}
	if o.ConsumeRate == 0 {
		o.ConsumeRate = 200
	}
	if o.ReadyTimeout == 0 {
		o.ReadyTimeout = 60 * time.Second
	}
}

// Service is one running service.
type Service struct {
	Name   string // order, payment, inventory, logistics
	URL    string // http://127.0.0.1:<port>
	Addr   string // 127.0.0.1:<port>
	DBName string
	DB     *sql.DB // pool on the service's database, for assertions
	Proc   *Process
	client *http.Client
}

// Stack is the running system.
type Stack struct {
	NameSrv    string // name server address the services use
	Embedded   bool   // whether NameSrv is the embedded broker started here
	Broker     *Process
	BrokerAddr string // the embedded broker's address ("" with ROCKETMQ_NAMESRV)
	// BrokerAdmin is the embedded broker's admin API address (fault hooks,
	// lag, DLQ; see pkg/testbroker/cmd/testbroker/admin.go), "" with ROCKETMQ_NAMESRV.
	BrokerAdmin string
	Order       *Service
	Payment     *Service
	Inventory   *Service
	Logistics   *Service
	Redis       *redis.Client // the services' Redis database
	RedisDB     int
	AdminToken  string
	Opts        Options
	LogDir      string
}

// Services returns the four services.
func (s *Stack) Services() []*Service {
	return []*Service{s.Order, s.Payment, s.Inventory, s.Logistics}
}

// Start starts the system and registers its shutdown in t.Cleanup. On any
// failure it fails the test (MariaDB or Redis unreachable included).
func Start(t testing.TB, bin *Binaries, opts Options) *Stack {
	t.Helper()
	opts.defaults()
	run := uniqueID()
	s := &Stack{
		RedisDB:    opts.RedisDB,
		AdminToken: "e2e-" + run,
		Opts:       opts,
		LogDir:     logDir(t),
	}
	if s.RedisDB == 0 {
		s.RedisDB = redisDB(t)
	}
	redisAddr := opts.RedisAddr
	if redisAddr == "" {
		redisAddr = getenv("REDIS_ADDR", defaultRedisAddr)
	}
	s.Redis = openRedis(t, redisAddr, s.RedisDB)

	dbs := map[string]*sql.DB{}
	for _, svc := range []string{"order", "payment", "inventory", "logistics"} {
		dbs[svc] = createDatabase(t, dbName(run, svc))
	}

	ports, err := freePorts(7)
	if err != nil {
		t.Fatalf("pick free ports: %v", err)
	}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        512,
			MaxIdleConnsPerHost: 512,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	t.Cleanup(client.CloseIdleConnections)
	newService := func(name string, port int) *Service {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		return &Service{Name: name, Addr: addr, URL: "http://" + addr,
			DBName: dbName(run, name), DB: dbs[name], client: client}
	}
	s.Order = newService("order", ports[0])
	s.Payment = newService("payment", ports[1])
	s.Inventory = newService("inventory", ports[2])
	s.Logistics = newService("logistics", ports[3])

	// Registered before anything starts so a failed start still cleans up;
	// it runs before the database drops registered above.
	t.Cleanup(func() { s.stop(t) })

	if ns := os.Getenv("ROCKETMQ_NAMESRV"); ns != "" {
		s.NameSrv = ns
		t.Logf("using RocketMQ at %s (ROCKETMQ_NAMESRV)", ns)
	} else {
		s.Embedded = true
		s.NameSrv = "127.0.0.1:" + strconv.Itoa(ports[4])
		brokerAddr := "127.0.0.1:" + strconv.Itoa(ports[5])
		s.BrokerAddr = brokerAddr
		s.BrokerAdmin = "127.0.0.1:" + strconv.Itoa(ports[6])
		args := []string{"-namesrv", s.NameSrv, "-broker", brokerAddr,
			"-delay-scale", strconv.FormatFloat(opts.DelayScale, 'g', -1, 64),
			"-admin", s.BrokerAdmin}
		if opts.BrokerDataDir != "" {
			args = append(args, "-data-dir", opts.BrokerDataDir)
		}
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		p, err := startProcess("testbroker", bin.Broker, args, env, filepath.Join(s.LogDir, "testbroker.log"))
		if err != nil {
			t.Fatal(err)
		}
		s.Broker = p
		if err := waitTCP(p, 30*time.Second, s.NameSrv, brokerAddr, s.BrokerAdmin); err != nil {
			t.Fatalf("embedded broker not ready: %v\n--- testbroker log tail ---\n%s", err, p.Tail(40))
		}
	}

	bins := map[string]string{"order": bin.Order, "payment": bin.Payment,
		"inventory": bin.Inventory, "logistics": bin.Logistics}
	for _, svc := range s.Services() {
		env := []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + t.TempDir(),
			"HTTP_ADDR=" + svc.Addr,
			"MYSQL_DSN=" + dsnVia(t, svc.DBName, opts.MySQLAddr[svc.Name]),
			"REDIS_ADDR=" + redisAddr,
			"REDIS_DB=" + strconv.Itoa(s.RedisDB),
			"ROCKETMQ_NAMESRV=" + s.NameSrv,
			"CONSUME_RATE=" + strconv.Itoa(opts.ConsumeRate),
			"PAY_TIMEOUT_LEVEL=" + strconv.Itoa(opts.PayTimeoutLevel),
			"ADMIN_TOKEN=" + s.AdminToken,
		}
		for _, k := range []string{"ROCKETMQ_ACCESS_KEY", "ROCKETMQ_SECRET_KEY"} {
			if v := os.Getenv(k); v != "" {
				env = append(env, k+"="+v)
			}
		}
		env = append(env, opts.Env...)
		env = append(env, opts.ServiceEnv[svc.Name]...)
		p, err := startProcess(svc.Name, bins[svc.Name], nil, env, filepath.Join(s.LogDir, svc.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		svc.Proc = p
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i, svc := range s.Services() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = svc.waitReady(opts.ReadyTimeout)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("services not ready: %v", err)
	}
	t.Logf("stack up: namesrv %s (embedded %v), order %s, payment %s, inventory %s, logistics %s, redis db %d, databases e2e_%s_*, logs in %s",
		s.NameSrv, s.Embedded, s.Order.URL, s.Payment.URL, s.Inventory.URL, s.Logistics.URL, s.RedisDB, run, s.LogDir)
	return s
}

// stop sends SIGTERM to every service (in parallel), then to the broker,
// fails the test for any process that does not exit with code 0 within
// StopTimeout, and prints the tail of every log when the test failed.
func (s *Stack) stop(t testing.TB) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, svc := range s.Services() {
		if svc == nil || svc.Proc == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Proc.Stop(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if s.Broker != nil {
		if err := s.Broker.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, err := range errs {
		t.Errorf("shutdown: %v", err)
	}
	if !t.Failed() {
		return
	}
	procs := []*Process{s.Broker}
	for _, svc := range s.Services() {
		if svc != nil {
			procs = append(procs, svc.Proc)
		}
	}
	for _, p := range procs {
		if p == nil {
			continue
		}
		t.Logf("--- %s log (%s), last 40 lines ---\n%s", p.Name, p.LogPath, p.Tail(40))
	}
}

// waitReady polls /healthz until it answers 200, the process exits, or timeout.
func (svc *Service) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if exited, err := svc.Proc.Exited(); exited {
			return fmt.Errorf("%s exited during start (%v)\n--- %s log tail ---\n%s", svc.Name, err, svc.Name, svc.Proc.Tail(40))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := svc.Do(ctx, http.MethodGet, "/healthz", nil, nil)
		cancel()
		if err == nil && r.Status == http.StatusOK {
			return nil
		}
		if err != nil {
			last = err
		} else {
			last = fmt.Errorf("GET /healthz = %d %s", r.Status, r.Body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not healthy within %s: %v\n--- %s log tail ---\n%s", svc.Name, timeout, last, svc.Name, svc.Proc.Tail(40))
}

// waitTCP waits until every address accepts a connection.
func waitTCP(p *Process, timeout time.Duration, addrs ...string) error {
	deadline := time.Now().Add(timeout)
	for _, a := range addrs {
		for {
			if exited, err := p.Exited(); exited {
				return fmt.Errorf("%s exited: %v: %w", p.Name, err, errExited)
			}
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s not accepting connections within %s: %w", a, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. The listeners are
// held until all are chosen so no port is returned twice.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// logDir is E2E_LOG_DIR/<test name> when set (kept after the run), else a
// temporary directory of t.
func logDir(t testing.TB) string {
	base := os.Getenv("E2E_LOG_DIR")
	if base == "" {
		return t.TempDir()
	}
	dir := filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("create log dir: %v", err)
	}
	return dir
}

// ErrorLines returns the lines each service logged at level ERROR so far
// (poison messages and unexpected failures), by service name.
func (s *Stack) ErrorLines() map[string][]string {
	out := map[string][]string{}
	for _, svc := range s.Services() {
		if l := svc.Proc.Grep(`"level":"ERROR"`); len(l) > 0 {
			out[svc.Name] = l
		}
	}
	return out
}
