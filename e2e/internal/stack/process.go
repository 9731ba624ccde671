package stack

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// StopTimeout is how long a process may take to exit after SIGTERM.
const StopTimeout = 10 * time.Second

// Process is one started executable whose stdout and stderr go to a file.
type Process struct {
	Name    string
	LogPath string
	bin     string
	args    []string
	env     []string
	cmd     *exec.Cmd
	log     *os.File
	done    chan struct{} // closed when Wait returned; state then holds the result
	waitErr error
}

// startProcess starts bin with args and env (the whole environment, nothing
// inherited), writing its output to logPath.
func startProcess(name, bin string, args, env []string, logPath string) (*Process, error) {
	return startProcessLog(name, bin, args, env, logPath, os.O_TRUNC)
}

// startProcessLog is startProcess with the log opened with extra flags
// (os.O_TRUNC for a first start, os.O_APPEND for a restart).
func startProcessLog(name, bin string, args, env []string, logPath string, flag int) (*Process, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, bin: bin, args: args, env: env, cmd: cmd, log: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Exited reports whether the process has exited, with its wait error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Pid returns the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to StopTimeout. It returns an error when
// the process had already exited, did not exit in time (it is then killed),
// or exited with a non-zero code.
func (p *Process) Stop() error {
	if exited, err := p.Exited(); exited {
		return fmt.Errorf("%s had already exited before stop: %v", p.Name, err)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	select {
	case <-p.done:
	case <-time.After(StopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %s of SIGTERM (killed)", p.Name, StopTimeout)
	}
	if p.waitErr != nil {
		return fmt.Errorf("%s exited after SIGTERM (%s) with %v, want exit code 0",
			p.Name, time.Since(start).Round(time.Millisecond), p.waitErr)
	}
	return nil
}

// Kill ends the process at once (for cleanup after a failed start).
func (p *Process) Kill() {
	if exited, _ := p.Exited(); exited {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Tail returns the last n lines of the process's output.
func (p *Process) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", p.LogPath, err)
	}
	b = bytes.TrimRight(b, "\n")
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Grep returns the lines of the process's output that contain s.
func (p *Process) Grep(s string) []string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.Contains(l, []byte(s)) {
			out = append(out, string(l))
		}
	}
	return out
}

var errExited = errors.New("process exited")
