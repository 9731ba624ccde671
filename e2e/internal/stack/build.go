package stack

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Binaries are the paths of the built executables of the system.
type Binaries struct {
	Dir        string
	Broker     string
	Order      string
	Payment    string
	Inventory  string
	Logistics  string
	RepoRoot   string
	BuildTaken time.Duration
}

// mains lists the main packages, relative to the repository root. go build
// names each binary after the last element of its path.
var mains = []string{
	"./pkg/testbroker/cmd/testbroker",
	"./order-service/cmd/order",
	"./payment-service/cmd/payment",
	"./inventory-service/cmd/inventory",
	"./logistics-service/cmd/logistics",
}

// Build compiles the broker and the four services into a temporary directory
// of t (one go build, from the workspace root, so go.work applies). Call it
// once per test run and hand the result to every Start. With E2E_BIN_DIR set
// (e.g. the bin/ of `make build`) it uses the binaries there instead; with
// E2E_RACE set it builds them with the race detector (a race then makes a
// service exit 66 at shutdown, which Stop reports).
func Build(t testing.TB) *Binaries {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatalf("find repository root: %v", err)
	}
	start := time.Now()
	dir := os.Getenv("E2E_BIN_DIR")
	if dir == "" {
		dir = t.TempDir()
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		if os.Getenv("E2E_RACE") != "" {
			args = append(args, "-race")
		}
		args = append(args, mains...)
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %v (in %s): %v\n%s", args, root, err, out)
		}
	} else if dir, err = filepath.Abs(dir); err != nil {
		t.Fatalf("E2E_BIN_DIR: %v", err)
	}
	b := &Binaries{
		Dir:        dir,
		Broker:     filepath.Join(dir, "testbroker"),
		Order:      filepath.Join(dir, "order"),
		Payment:    filepath.Join(dir, "payment"),
		Inventory:  filepath.Join(dir, "inventory"),
		Logistics:  filepath.Join(dir, "logistics"),
		RepoRoot:   root,
		BuildTaken: time.Since(start),
	}
	for _, p := range []string{b.Broker, b.Order, b.Payment, b.Inventory, b.Logistics} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("built binary missing: %v", err)
		}
	}
	return b
}

// RepoRoot returns the nearest directory above the working directory that
// holds go.work.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

func (b *Binaries) String() string {
	return fmt.Sprintf("binaries in %s (built in %s)", b.Dir, b.BuildTaken.Round(time.Millisecond))
}
