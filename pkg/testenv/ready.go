package testenv

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"testing"
)

// CheckReady fails the test unless GET <base>/readyz answers 200 with
// exactly the checks named in want (in any order), each "ok": a service's
// main wired its readiness checks.
func CheckReady(t testing.TB, base string, want ...string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET %s/readyz: %v", base, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s/readyz: decode: %v", base, err)
	}
	if resp.StatusCode != http.StatusOK || body.Status != "ready" {
		t.Errorf("GET %s/readyz = %d %q %v, want 200 ready", base, resp.StatusCode, body.Status, body.Checks)
	}
	got := slices.Sorted(maps.Keys(body.Checks))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("GET %s/readyz checks = %q, want %q", base, got, want)
	}
}
