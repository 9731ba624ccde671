package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Console is a running sale console (console/cmd/console).
type Console struct {
	URL  string // the page, http://127.0.0.1:<port>/
	Proc *Process
}

// BuildConsole returns the console binary: bin.Dir/console when the
// binaries come from E2E_BIN_DIR (`make build` makes it), else a fresh
// go build of it into a temporary directory of t.
func BuildConsole(t testing.TB, bin *Binaries) string {
	t.Helper()
	if os.Getenv("E2E_BIN_DIR") != "" {
		p := filepath.Join(bin.Dir, "console")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("console binary missing from E2E_BIN_DIR (run make build): %v", err)
		}
		return p
	}
	out := filepath.Join(t.TempDir(), "console")
	cmd := exec.Command("go", "build", "-o", out, "./console/cmd/console")
	cmd.Dir = bin.RepoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./console/cmd/console: %v\n%s", err, b)
	}
	return out
}

// StartConsole starts the console binary against the stack on a free
// port, waits for its /healthz, and stops it in t.Cleanup (SIGTERM; any
// exit code but 0 fails the test). args are added to its command line.
func (s *Stack) StartConsole(t testing.TB, bin string, args ...string) *Console {
	t.Helper()
	all := []string{
		"-http-addr", "127.0.0.1:0",
		"-order-url", s.Order.URL, "-payment-url", s.Payment.URL,
		"-inventory-url", s.Inventory.URL, "-logistics-url", s.Logistics.URL,
		"-namesrv", s.NameSrv,
		"-consume-rate", strconv.Itoa(s.Opts.ConsumeRate),
	}
	all = append(all, args...)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	logPath := filepath.Join(s.LogDir, "console.log")
	p, err := startProcess("console", bin, all, env, logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("console shutdown: %v\n--- console log tail ---\n%s", err, p.Tail(20))
		}
	})
	c := &Console{Proc: p}
	deadline := time.Now().Add(30 * time.Second)
	for c.URL == "" {
		if exited, err := p.Exited(); exited {
			t.Fatalf("console exited during start (%v)\n--- console log ---\n%s", err, p.Tail(40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("console printed no URL within 30 s\n--- console log ---\n%s", p.Tail(40))
		}
		c.URL = readyURL(logPath)
		time.Sleep(50 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.URL, "/")+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("console /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("console /healthz = %d, want 200", resp.StatusCode)
	}
	t.Logf("console at %s (log %s)", c.URL, logPath)
	return c
}

// readyURL returns the url of the console's "console ready" log line, or "".
func readyURL(logPath string) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			URL string `json:"url"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "console ready") {
			return line.URL
		}
	}
	return ""
}
