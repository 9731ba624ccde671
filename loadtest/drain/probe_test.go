package drain

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestProbe: 200 answers, any other status or no server does not.
func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
		}
	}))
	if err := Probe(t.Context(), srv.URL+"/metrics"); err != nil {
		t.Errorf("Probe(/metrics) = %v, want nil", err)
	}
	if err := Probe(t.Context(), srv.URL+"/other"); err == nil || err.Error() != "status 404" {
		t.Errorf("Probe(/other) = %v, want status 404", err)
	}
	url := srv.URL + "/metrics"
	srv.Close()
	if err := Probe(t.Context(), url); err == nil {
		t.Errorf("Probe after the server closed = nil, want an error")
	}
}
