package testenv

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually and Poll re-check their condition.
const pollEvery = 20 * time.Millisecond

// Eventually re-checks cond until it holds; after timeout, or when the test's
// context ends, it fails the test naming what it waited for.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll(t, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

type notYet struct{}

func (notYet) Error() string { return "condition not met" }

var errNotYet error = notYet{}

// Poll calls f until it returns nil; after timeout, or when the test's
// context ends, it fails the test with what and f's last error.
func Poll(t testing.TB, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-deadline.C:
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		case <-t.Context().Done():
			t.Fatalf("test ended waiting for %s: %v", what, err)
		case <-time.After(pollEvery):
		}
	}
}
