package e2e

import (
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"

	"seckill/e2e/internal/stack"
	"seckill/pkg/testenv"
)

// runScript is one stack of deploy/run.sh (what `make run` runs): every
// address on a port that was free, its own run dir.
type runScript struct {
	root, bin, runDir string
	addrs             map[string]string // run.sh variable -> host:port
	env               []string
}

// runScriptAddrs are the address variables of deploy/run.sh.
var runScriptAddrs = []string{
	"MYSQL_ADDR", "REDIS_ADDR", "ORDER_HTTP_ADDR", "PAYMENT_HTTP_ADDR", "INVENTORY_HTTP_ADDR",
	"LOGISTICS_HTTP_ADDR", "EMBEDDED_NAMESRV", "EMBEDDED_BROKER", "EMBEDDED_BROKER_METRICS", "CONSOLE_HTTP_ADDR",
}

// httpAddrs maps each service to its address variable.
var httpAddrs = map[string]string{
	"order": "ORDER_HTTP_ADDR", "payment": "PAYMENT_HTTP_ADDR",
	"inventory": "INVENTORY_HTTP_ADDR", "logistics": "LOGISTICS_HTTP_ADDR",
}

func newRunScript(t *testing.T) *runScript {
	t.Helper()
	bins := stack.Build(t)
	r := &runScript{root: bins.RepoRoot, bin: bins.Dir, runDir: filepath.Join(t.TempDir(), "run"), addrs: map[string]string{}}
	for _, k := range runScriptAddrs {
		r.addrs[k] = testenv.FreeAddr(t)
	}
	// The caller's environment minus what would point run.sh elsewhere.
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "ROCKETMQ_NAMESRV" || k == "ADMIN_TOKEN" || k == "RUN_DIR" || k == "BIN_DIR" || slices.Contains(runScriptAddrs, k) {
			continue
		}
		r.env = append(r.env, kv)
	}
	r.env = append(r.env, "RUN_DIR="+r.runDir, "BIN_DIR="+r.bin, "ADMIN_TOKEN=tok-runscript")
	for k, v := range r.addrs {
		r.env = append(r.env, k+"="+v)
	}
	// Whatever happens, nothing stays running after the test.
	t.Cleanup(func() {
		cmd := exec.Command("bash", filepath.Join(r.root, "deploy/run.sh"), "-stop")
		cmd.Env = r.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("run.sh -stop at cleanup: %v\n%s", err, out)
		}
	})
	return r
}

// started is one running deploy/run.sh, leader of its own process group as
// under a terminal or make.
type started struct {
	cmd  *exec.Cmd
	out  string // its stdout and stderr
	done chan struct{}
	err  error
}

// start runs argv (run.sh, or make running it) in a new process group.
func (r *runScript) start(t *testing.T, argv ...string) *started {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.log")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = r.root
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &started{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		f.Close()
		close(s.done)
	}()
	return s
}

func (s *started) output() string {
	b, _ := os.ReadFile(s.out)
	return string(b)
}

// waitUp waits until run.sh says the system is up.
func (s *started) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(s.output(), "The flash-sale system is up.") {
		select {
		case <-s.done:
			t.Fatalf("run.sh exited (%v) before the system was up:\n%s", s.err, s.output())
		case <-deadline:
			t.Fatalf("run.sh did not bring the system up within 3 min:\n%s", s.output())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitOutput waits up to 90 s until the output contains want; once the
// started process has exited, 20 s more at most (run.sh may still be
// stopping after make is gone, writing to the same file).
func (s *started) waitOutput(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	exited := false
	for !strings.Contains(s.output(), want) {
		select {
		case <-s.done:
			if !exited {
				exited = true
				if grace := time.Now().Add(20 * time.Second); grace.Before(deadline) {
					deadline = grace
				}
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("run.sh did not say %q (exited: %v):\n%s", want, exited, s.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wait waits for the script to exit and returns its exit code.
func (s *started) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(within):
		t.Fatalf("run.sh still running %s after the signal:\n%s", within, s.output())
	}
	var exit *exec.ExitError
	if errors.As(s.err, &exit) {
		return exit.ExitCode()
	}
	if s.err != nil {
		t.Fatalf("run.sh: %v", s.err)
	}
	return 0
}

// pids reads run.sh's pid files: name -> pid.
func (r *runScript) pids(t *testing.T) map[string]int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.runDir, "pids", "*.pid"))
	m := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fields := strings.Fields(string(b))
		pid, err := strconv.Atoi(fields[0])
		if err != nil {
			t.Fatalf("%s: %q: %v", f, b, err)
		}
		m[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
	}
	return m
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// checkUp checks the stack while up: the private MariaDB and Redis are the
// ones run.sh started (data in its run dir, Redis with appendonly), every
// service answers /readyz 200 and its own -readycheck agrees. It returns
// every pid run.sh recorded.
func (r *runScript) checkUp(t *testing.T) map[string]int {
	t.Helper()
	pids := r.pids(t)
	want := []string{"console", "inventory", "logistics", "mariadb", "order", "payment", "redis", "testbroker"}
	if got := slices.Sorted(maps.Keys(pids)); !slices.Equal(got, want) {
		t.Errorf("pid files %q, want %q", got, want)
	}
	for name, pid := range pids {
		if !alive(pid) {
			t.Errorf("%s (pid %d) is not running", name, pid)
		}
	}

	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", r.addrs["MYSQL_ADDR"]
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var datadir string
	if err := db.QueryRowContext(t.Context(), "SELECT @@datadir").Scan(&datadir); err != nil {
		t.Errorf("private MariaDB at %s: %v", cfg.Addr, err)
	} else if !strings.HasPrefix(datadir, r.runDir) {
		t.Errorf("MariaDB at %s has datadir %s, want the private one under %s", cfg.Addr, datadir, r.runDir)
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.addrs["REDIS_ADDR"]})
	defer rdb.Close()
	if got, err := rdb.ConfigGet(t.Context(), "appendonly").Result(); err != nil || got["appendonly"] != "yes" {
		t.Errorf("private Redis CONFIG GET appendonly = %v, %v; want yes", got, err)
	}
	if got, err := rdb.ConfigGet(t.Context(), "dir").Result(); err != nil || !strings.HasPrefix(got["dir"], r.runDir) {
		t.Errorf("private Redis CONFIG GET dir = %v, %v; want under %s", got, err, r.runDir)
	}

	for svc, v := range httpAddrs {
		resp, err := http.Get("http://" + r.addrs[v] + "/readyz")
		if err != nil {
			t.Errorf("GET %s-service /readyz: %v", svc, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s-service /readyz = %d, want 200", svc, resp.StatusCode)
		}
		if out, err := r.readycheck(t, svc); err != nil {
			t.Errorf("%s -readycheck while up: %v\n%s", svc, err, out)
		}
	}
	// The embedded broker's metrics (the load tool charts its RSS).
	if resp, err := http.Get("http://" + r.addrs["EMBEDDED_BROKER_METRICS"] + "/metrics"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET embedded broker /metrics = %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	// The live sale console, started with the services.
	if resp, err := http.Get("http://" + r.addrs["CONSOLE_HTTP_ADDR"] + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET console /healthz = %v, %v; want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	return pids
}

// readycheck runs the service binary's -readycheck with run.sh's
// environment for it.
func (r *runScript) readycheck(t *testing.T, svc string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(r.root, "deploy/run.sh"), "-print-env", svc)
	cmd.Env = r.env
	envOut, err := cmd.Output()
	if err != nil {
		t.Fatalf("run.sh -print-env %s: %v", svc, err)
	}
	check := exec.Command(filepath.Join(r.bin, svc), "-readycheck")
	check.Env = append([]string{"PATH=" + os.Getenv("PATH")}, strings.Split(strings.TrimSpace(string(envOut)), "\n")...)
	return check.CombinedOutput()
}

// checkDown checks that nothing run.sh started runs or listens any more.
func (r *runScript) checkDown(t *testing.T, pids map[string]int) {
	t.Helper()
	// A process can outlive its parent by a moment before it is reaped.
	deadline := time.Now().Add(5 * time.Second)
	for name, pid := range pids {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("%s (pid %d) still running after the stop", name, pid)
		}
	}
	for _, k := range runScriptAddrs {
		if c, err := net.DialTimeout("tcp", r.addrs[k], time.Second); err == nil {
			c.Close()
			t.Errorf("%s %s still accepts connections after the stop", k, r.addrs[k])
		}
	}
	if left := r.pids(t); len(left) > 0 {
		t.Errorf("pid files left after the stop: %v", left)
	}
	if out, err := r.readycheck(t, "order"); err == nil {
		t.Errorf("order -readycheck after the stop = success, want failure\n%s", out)
	}
}

// TestRunScript drives deploy/run.sh with MYSQL_ADDR and REDIS_ADDR on free
// ports where nothing listens: the private MariaDB and Redis come up, the
// stack gets ready, and each way a run ends leaves nothing running.
func TestRunScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB, Redis, the broker and the services: skipped under -short")
	}
	r := newRunScript(t)
	script := filepath.Join(r.root, "deploy/run.sh")

	// SIGTERM to make's process group, as a supervisor or script sends it:
	// run.sh gets it from the group, and again from make, which passes a
	// SIGTERM on to its children. Whether make's copy comes before run.sh
	// has begun to stop is a race, so the test sends the group a second
	// SIGTERM once the stop has begun (as an impatient supervisor would).
	mk := filepath.Join(t.TempDir(), "Makefile")
	if err := os.WriteFile(mk, []byte("run:\n\tbash "+script+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := r.start(t, "make", "-s", "-f", mk, "run")
	s.waitUp(t)
	pids := r.checkUp(t)
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitOutput(t, "stopping...")
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM) // the group may be gone already
	s.waitOutput(t, "stopped.")
	s.wait(t, 30*time.Second)
	r.checkDown(t, pids)
	if t.Failed() {
		t.Fatalf("after SIGTERM to make's group:\n%s", s.output())
	}

	// SIGHUP to the group: the terminal was closed.
	s = r.start(t, "bash", script)
	s.waitUp(t)
	pids = r.checkUp(t)
	if err := syscall.Kill(-s.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitOutput(t, "stopped.")
	if code := s.wait(t, 30*time.Second); code != 0 {
		t.Errorf("run.sh exit code after SIGHUP = %d, want 0", code)
	}
	r.checkDown(t, pids)
	if t.Failed() {
		t.Fatalf("after SIGHUP to the group:\n%s", s.output())
	}

	// SIGKILL leaves everything running: the next run names it and stops;
	// run.sh -stop (make stop) stops it.
	s = r.start(t, "bash", script)
	s.waitUp(t)
	pids = r.pids(t)
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.wait(t, 10*time.Second)
	if !alive(pids["order"]) {
		t.Fatalf("order-service (pid %d) died with run.sh's SIGKILL; want it left running", pids["order"])
	}
	again := r.start(t, "bash", script)
	if code := again.wait(t, time.Minute); code == 0 {
		t.Errorf("run.sh with leftovers running exited 0, want an error:\n%s", again.output())
	}
	out := again.output()
	for _, want := range []string{"still running from an earlier make run", fmt.Sprintf("order (pid %d)", pids["order"]),
		fmt.Sprintf("mariadb (pid %d)", pids["mariadb"]), "make stop"} {
		if !strings.Contains(out, want) {
			t.Errorf("run.sh with leftovers said:\n%s\nwant it to contain %q", out, want)
		}
	}
	stop := exec.Command("bash", script, "-stop")
	stop.Env = r.env
	stopOut, err := stop.CombinedOutput()
	if err != nil {
		t.Fatalf("run.sh -stop: %v\n%s", err, stopOut)
	}
	r.checkDown(t, pids)
	var stopped int
	for _, line := range strings.Split(string(stopOut), "\n") {
		if strings.Contains(line, "stopping ") && strings.Contains(line, "(pid ") {
			stopped++
		}
	}
	if stopped != len(pids) {
		t.Errorf("run.sh -stop named %d processes, want %d:\n%s", stopped, len(pids), stopOut)
	}
}
