package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"seckill/console/internal/board"
	"seckill/console/internal/web"
)

// boards is a fixed board source.
type boards struct {
	b  board.Board
	ok bool
	ch chan board.Board
}

func (f *boards) Latest() (board.Board, bool) { return f.b, f.ok }
func (f *boards) History() []board.Point {
	if !f.ok {
		return []board.Point{}
	}
	return []board.Point{board.PointOf(f.b)}
}
func (f *boards) Subscribe() (<-chan board.Board, func()) { return f.ch, func() {} }

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read %s: %v", url, err)
	}
	return resp, string(b)
}

func TestPageAndAssets(t *testing.T) {
	srv := httptest.NewServer(web.Handler(&boards{}, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	resp, html := get(t, srv.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, "Sale console") {
		t.Fatalf("GET / = %d %q, want the page", resp.StatusCode, html)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q, want default-src 'self'", csp)
	}
	// Everything the page loads comes from the console itself: no CDN.
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(html, -1)
	if len(refs) < 4 {
		t.Fatalf("page references %v, want the stylesheets and scripts", refs)
	}
	for _, r := range refs {
		ref := r[1]
		if strings.Contains(ref, "//") {
			t.Errorf("page loads %q from another origin", ref)
			continue
		}
		if strings.HasPrefix(ref, "data:") {
			continue
		}
		if resp, body := get(t, srv.URL+"/"+ref); resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET /%s = %d (%d bytes), want the embedded file", ref, resp.StatusCode, len(body))
		}
	}
	if resp, body := get(t, srv.URL+"/healthz"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "ok") {
		t.Errorf("GET /healthz = %d %s, want 200 ok", resp.StatusCode, body)
	}
}

func TestBoardAPI(t *testing.T) {
	src := &boards{}
	srv := httptest.NewServer(web.Handler(src, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	if resp, body := get(t, srv.URL+"/api/board"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /api/board before the first read = %d %s, want 503", resp.StatusCode, body)
	}
	src.b, src.ok = board.Board{Seq: 7, ConsumeRate: 200}, true
	resp, body := get(t, srv.URL+"/api/board")
	var b board.Board
	if err := json.Unmarshal([]byte(body), &b); err != nil || resp.StatusCode != http.StatusOK || b.Seq != 7 {
		t.Errorf("GET /api/board = %d %s (%v), want 200 with board #7", resp.StatusCode, body, err)
	}
	if resp, body := get(t, srv.URL+"/api/history"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "[{") {
		t.Errorf("GET /api/history = %d %s, want one point", resp.StatusCode, body)
	}
}

// TestEvents reads two boards from the event stream, then stops the server:
// Serve must return at once although the stream is still open.
func TestEvents(t *testing.T) {
	src := &boards{ch: make(chan board.Board, 2)}
	src.ch <- board.Board{Seq: 1}
	src.ch <- board.Board{Seq: 2}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- web.Serve(ctx, ln, web.Handler(src, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler))
	}()

	resp, err := http.Get("http://" + ln.Addr().String() + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q, want text/event-stream", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var seqs []int64
	for len(seqs) < 2 && sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var b board.Board
			if err := json.Unmarshal([]byte(data), &b); err != nil {
				t.Fatalf("event data %q: %v", data, err)
			}
			seqs = append(seqs, b.Seq)
		}
	}
	if len(seqs) != 2 || seqs[0] != 1 || seqs[1] != 2 {
		t.Fatalf("events carried boards %v, want [1 2]", seqs)
	}
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve() = %v, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return within 3 s of cancel with an event stream open")
	}
	t.Logf("stopped in %s with a stream open", time.Since(start))
}
