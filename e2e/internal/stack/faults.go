package stack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// Fault injection for chaos tests: kill, stop and restart processes with the
// same binary, arguments, environment and ports, drive the embedded broker's
// fault hooks through its admin API, and read services' metrics.

// restart starts the exited process p again with the same binary, arguments
// and environment; its output is appended to the same log.
func (p *Process) restart() (*Process, error) {
	if exited, _ := p.Exited(); !exited {
		return nil, fmt.Errorf("restart %s: still running", p.Name)
	}
	return startProcessLog(p.Name, p.bin, p.args, p.env, p.LogPath, os.O_APPEND)
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ExitCode is the exit code of an exited process (-1 if killed by a signal
// or still running).
func (p *Process) ExitCode() int {
	if exited, _ := p.Exited(); !exited || p.cmd.ProcessState == nil {
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// Kill9 kills the service with SIGKILL and waits for it to be gone: no
// shutdown code runs, in-flight work is lost as in a crash.
func (svc *Service) Kill9() { svc.Proc.Kill() }

// Stop sends SIGTERM and waits up to StopTimeout. It returns how long the
// exit took, and an error when it took longer or the exit code was not 0.
func (svc *Service) Stop() (time.Duration, error) {
	start := time.Now()
	err := svc.Proc.Stop()
	return time.Since(start), err
}

// Restart starts the exited service again (same env and port) and waits for
// its /healthz.
func (svc *Service) Restart(ready time.Duration) error {
	p, err := svc.Proc.restart()
	if err != nil {
		return err
	}
	svc.Proc = p
	return svc.waitReady(ready)
}

// RestartBroker stops the embedded broker (SIGKILL when kill, else SIGTERM),
// waits down, starts it again with the same flags (and -data-dir, if Options
// set one) and waits for its listeners. The services are left to reconnect
// alone.
func (s *Stack) RestartBroker(kill bool, down time.Duration) error {
	if s.Broker == nil {
		return fmt.Errorf("no embedded broker (ROCKETMQ_NAMESRV is set)")
	}
	if kill {
		s.Broker.Kill()
	} else if err := s.Broker.Stop(); err != nil {
		return err
	}
	time.Sleep(down)
	p, err := s.Broker.restart()
	if err != nil {
		return err
	}
	s.Broker = p
	return waitTCP(p, 30*time.Second, s.NameSrv, s.BrokerAddr, s.BrokerAdmin)
}

// Faults is the body of the broker's POST /faults; nil fields are unchanged.
type Faults struct {
	Duplicate   *int            `json:"duplicate,omitempty"`
	DropCommits map[string]bool `json:"drop_commits,omitempty"`
	Pause       *bool           `json:"pause,omitempty"`
	LatencyMS   *int            `json:"latency_ms,omitempty"`
	RefuseSends *bool           `json:"refuse_sends,omitempty"`
}

// SetFaults changes the embedded broker's fault hooks.
func (s *Stack) SetFaults(ctx context.Context, f Faults) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.admin(ctx, http.MethodPost, "/faults", b, nil)
}

// Lag is the broker's lag of group (messages not yet committed).
func (s *Stack) Lag(ctx context.Context, group string) (int64, error) {
	var r struct {
		Lag int64 `json:"lag"`
	}
	err := s.admin(ctx, http.MethodGet, "/lag?group="+group, nil, &r)
	return r.Lag, err
}

// DLQMessage is one message of a group's dead-letter queue.
type DLQMessage struct {
	MsgID          string `json:"msg_id"`
	Tags           string `json:"tags"`
	Keys           string `json:"keys"`
	ReconsumeTimes int32  `json:"reconsume_times"`
	BodyBytes      int    `json:"body_bytes"`
}

// DLQ lists the dead-lettered messages of group.
func (s *Stack) DLQ(ctx context.Context, group string) ([]DLQMessage, error) {
	var r struct {
		Messages []DLQMessage `json:"messages"`
	}
	err := s.admin(ctx, http.MethodGet, "/dlq?group="+group, nil, &r)
	return r.Messages, err
}

func (s *Stack) admin(ctx context.Context, method, path string, body []byte, out any) error {
	if s.BrokerAdmin == "" {
		return fmt.Errorf("no embedded broker admin API (ROCKETMQ_NAMESRV is set)")
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+s.BrokerAdmin+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("broker admin %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("broker admin %s %s = %d %s", method, path, resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// Metric sums the samples of the Prometheus metric name on the service's
// /metrics whose labels include every k="v" of labels.
func (svc *Service) Metric(ctx context.Context, name string, labels map[string]string) (float64, error) {
	r, err := svc.Do(ctx, http.MethodGet, "/metrics", nil, nil)
	if err != nil {
		return 0, err
	}
	if r.Status != http.StatusOK {
		return 0, fmt.Errorf("GET %s/metrics = %d", svc.Name, r.Status)
	}
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		var lbl string
		switch {
		case strings.HasPrefix(rest, "{"):
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			lbl, rest = rest[1:end], rest[end+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // a longer metric name
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(","+lbl+",", ","+k+"="+strconv.Quote(v)+",") {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// LogPaths returns the log files of the broker and every service.
func (s *Stack) LogPaths() []string {
	var out []string
	if s.Broker != nil {
		out = append(out, s.Broker.LogPath)
	}
	for _, svc := range s.Services() {
		if svc != nil && svc.Proc != nil {
			out = append(out, svc.Proc.LogPath)
		}
	}
	return out
}
