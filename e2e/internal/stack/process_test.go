package stack

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestProcessStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  string
		wantErr string // "" = clean stop
	}{
		{"exits 0 on SIGTERM", `trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done`, ""},
		{"exits 3 on SIGTERM", `trap 'exit 3' TERM; echo up; while :; do sleep 0.05; done`, "exit status 3"},
		{"already exited", `exit 0`, "already exited"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "p.log")
			p, err := startProcess("sh", "/bin/sh", []string{"-c", tc.script}, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Kill)
			if tc.wantErr == "already exited" {
				<-p.done
			} else {
				// The trap must be installed before the signal is sent.
				waitLine(t, p, tc.script)
			}
			err = p.Stop()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Stop() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Stop() = %v, want an error containing %q", err, tc.wantErr)
			}
			if tc.wantErr == "" && !strings.Contains(p.Tail(5), "bye") {
				t.Errorf("Tail(5) = %q, want the trap's output", p.Tail(5))
			}
		})
	}
}

// waitLine waits until the script printed "up", i.e. its trap is installed.
func waitLine(t *testing.T, p *Process, script string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Tail(1), "up") {
		if exited, err := p.Exited(); exited {
			t.Fatalf("%s exited early: %v", script, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no \"up\" within 10 s", script)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
