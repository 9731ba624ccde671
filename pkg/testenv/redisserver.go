package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisServer is a private redis-server on a free port with its data in a
// directory of the test, for tests that restart Redis or touch its files
// (which the shared Redis of the machine must never see). It is killed in
// Cleanup.
type RedisServer struct {
	Addr string // 127.0.0.1:<port>
	Dir  string // its working directory: dump.rdb, appendonlydir/
	bin  string
	conf string

	mu  sync.Mutex
	cmd *exec.Cmd
}

// StartRedisServer starts redis-server with the config lines conf (e.g.
// "appendonly yes") after "save \"\"" and "appendonly no", and waits until
// it answers PING. The binary is redis-server on PATH or, as Debian's
// redis-tools ships it, redis-check-rdb run under the name redis-server.
func StartRedisServer(t testing.TB, conf ...string) *RedisServer {
	t.Helper()
	skipShort(t)
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		rdb, err2 := exec.LookPath("redis-check-rdb")
		if err2 != nil {
			t.Fatalf("testenv: no redis-server or redis-check-rdb on PATH (apt-get install redis-tools): %v", err)
		}
		bin = filepath.Join(t.TempDir(), "redis-server")
		if err := os.Symlink(rdb, bin); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	s := &RedisServer{Addr: FreeAddr(t), Dir: t.TempDir(), bin: bin}
	host, port, _ := net.SplitHostPort(s.Addr)
	lines := append([]string{"bind " + host, "port " + port, "dir " + s.Dir, `save ""`, "appendonly no",
		"daemonize no", "logfile " + filepath.Join(s.Dir, "redis.log")}, conf...)
	s.conf = filepath.Join(s.Dir, "redis.conf")
	if err := os.WriteFile(s.conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(s.Kill)
	if err := s.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return s
}

// Start starts the server (again, after Kill) on the same port and
// directory and waits until it answers PING: it loads what its files hold.
func (s *RedisServer) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, s.conf)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			go func() { <-exited }() // reaped; Kill waits on the process itself
			return nil
		}
		select {
		case werr := <-exited:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server exited during start (%v): %s", werr, log)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server at %s not answering: %w", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL (no shutdown save, as in a crash) and
// waits until its port is free.
func (s *RedisServer) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	for range 500 {
		if err := s.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 500 {
		c, err := net.DialTimeout("tcp", s.Addr, 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	s.cmd = nil
}

// Client returns a client of the server's database 0, closed in Cleanup.
func (s *RedisServer) Client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// RunID is the run_id Redis reports (INFO server): new at every start of the
// server, so a client can tell a restarted Redis from the one it knew.
func RunID(t testing.TB, rdb redis.UniversalClient) string {
	t.Helper()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatalf("testenv: INFO server: %v", err)
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "run_id:"); ok {
			return v
		}
	}
	t.Fatalf("testenv: no run_id in INFO server")
	return ""
}
