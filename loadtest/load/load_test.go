package load

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeOrders answers like order-service: stock units, one per user, the same
// order for a repeated Idempotency-Key.
type fakeOrders struct {
	mu         sync.Mutex
	rebuilding int // the first requests answer 503 stock_rebuilding
	stock      int
	users      map[string]bool
	keys       map[string]string
	n          int
}

func (f *fakeOrders) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ UserID string }
	buf := make([]byte, 256)
	n, _ := r.Body.Read(buf)
	s := string(buf[:n])
	i := strings.Index(s, `"user_id":"`) + len(`"user_id":"`)
	body.UserID = s[i : i+strings.IndexByte(s[i:], '"')]
	key := r.Header.Get("Idempotency-Key")
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if id, ok := f.keys[body.UserID+"/"+key]; ok {
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"order_id":%q,"status":"pending","pay_deadline":%q}`, id, fakeDeadline)
		return
	}
	switch {
	case f.rebuilding > 0:
		f.rebuilding--
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"stock_rebuilding","message":"x"}`)
	case f.users[body.UserID]:
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":"limit_exceeded","message":"x"}`)
	case f.stock == 0:
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":"sold_out","message":"x"}`)
	default:
		f.stock--
		f.n++
		f.users[body.UserID] = true
		id := fmt.Sprintf("o%d", f.n)
		f.keys[body.UserID+"/"+key] = id
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"order_id":%q,"status":"pending","pay_deadline":%q}`, id, fakeDeadline)
	}
}

const fakeDeadline = "2026-12-04T12:00:10.123Z"

func TestRunCountsAnswers(t *testing.T) {
	for _, rate := range []float64{0, 2000} {
		t.Run(fmt.Sprintf("rate=%v", rate), func(t *testing.T) {
			f := &fakeOrders{rebuilding: 20, stock: 100, users: map[string]bool{}, keys: map[string]string{}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			var offered struct {
				mu       sync.Mutex
				ids      map[string]int
				deadline time.Time
			}
			offered.ids = map[string]int{}
			run, err := Start(context.Background(), Config{
				OrderAddr: strings.TrimPrefix(srv.URL, "http://"), ProductID: "p1", Rate: rate,
				Conns: 8, Users: 300, RepeatShare: 0.1, DupShare: 0.1, Requests: 600, Timeout: 5 * time.Second, Seed: 3,
				OnAccepted: func(id string, _, deadline time.Time) {
					offered.mu.Lock()
					defer offered.mu.Unlock()
					offered.ids[id]++
					offered.deadline = deadline
				},
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			res := run.Wait()
			c := res.Counts
			if c.Sent != 600 || c.Errors() != 0 {
				t.Fatalf("sent %d, errors %d (%s), want 600 and 0", c.Sent, c.Errors(), res.SampleError)
			}
			if c.Accepted != 100 || len(res.AcceptedIDs) != 100 {
				t.Errorf("accepted %d (%d IDs), want the stock 100", c.Accepted, len(res.AcceptedIDs))
			}
			if c.Unavailable != 20 || res.ByAnswer["503"] != 20 {
				t.Errorf("unavailable %d (by answer %d), want the 20 answers 503", c.Unavailable, res.ByAnswer["503"])
			}
			if c.Accepted+c.Replayed+c.SoldOut+c.LimitExceeded+c.Unavailable != c.Sent {
				t.Errorf("counts %+v do not add up to sent", c)
			}
			if c.Replayed == 0 || c.SoldOut == 0 || c.LimitExceeded == 0 {
				t.Errorf("counts %+v: want replays, sold_out and limit_exceeded", c)
			}
			if got := res.ByAnswer["202"]; got != c.Accepted+c.Replayed {
				t.Errorf("ByAnswer[202] = %d, want %d", got, c.Accepted+c.Replayed)
			}
			if res.Latency.P50 <= 0 || res.Latency.P99 < res.Latency.P50 {
				t.Errorf("latency %+v", res.Latency)
			}
			offered.mu.Lock()
			defer offered.mu.Unlock()
			if d := cmp.Diff(res.AcceptedIDs, slices.Sorted(maps.Keys(offered.ids))); d != "" {
				t.Errorf("orders offered by OnAccepted (-accepted +offered):\n%s", d)
			}
			for id, n := range offered.ids {
				if n != 1 {
					t.Errorf("order %s offered %d times, want once", id, n)
				}
			}
			if want, _ := time.Parse(time.RFC3339Nano, fakeDeadline); !offered.deadline.Equal(want) {
				t.Errorf("OnAccepted pay deadline = %v, want the 202's %v", offered.deadline, want)
			}
		})
	}
}
