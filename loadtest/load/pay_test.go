package load

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakePayments answers like payment-service: o<n> with n%5 == 0 is not
// known for its first two pays (404), n%7 == 0 is closed (409), "o3" is
// never known; the first requests answer 503; the rest is paid.
type fakePayments struct {
	mu          sync.Mutex
	unavailable int
	calls       map[string]int
}

func (f *fakePayments) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/api/v1/payments/")
	n, _ := strconv.Atoi(strings.TrimPrefix(id, "o"))
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[id]++
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method != http.MethodPost:
		w.WriteHeader(http.StatusMethodNotAllowed)
	case f.unavailable > 0:
		f.unavailable--
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"unavailable"}`)
	case id == "o3" || (n%5 == 0 && f.calls[id] <= 2):
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"not_found"}`)
	case n%7 == 0:
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"error":"order_closed"}`)
	default:
		fmt.Fprint(w, `{"status":"paid","pay_deadline":"2026-12-04T12:00:10Z"}`)
	}
}

func TestPayer(t *testing.T) {
	t.Parallel()
	f := &fakePayments{unavailable: 3, calls: map[string]int{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	p, err := NewPayer(context.Background(), PayConfig{URL: srv.URL, Share: 1, Workers: 4, RetryFor: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for n := 1; n <= 40; n++ {
		// o7..o14 had their deadline pass already: a 409 then is late.
		deadline := now.Add(time.Minute)
		if n >= 7 && n <= 14 {
			deadline = now.Add(-time.Second)
		}
		p.Offer("o"+strconv.Itoa(n), now, deadline)
	}
	res := p.Wait()

	var wantPaid []string
	for n := 1; n <= 40; n++ {
		if n != 3 && n%7 != 0 {
			wantPaid = append(wantPaid, "o"+strconv.Itoa(n))
		}
	}
	slices.Sort(wantPaid)
	got := PayResult{Chosen: res.Chosen, Paid: res.Paid, Late: res.Late, LateBeforeDeadline: res.LateBeforeDeadline,
		Unknown: res.Unknown, Failed: res.Failed, Retries: res.Retries, PaidIDs: res.PaidIDs}
	want := PayResult{Chosen: 40, Paid: int64(len(wantPaid)), Late: 5, LateBeforeDeadline: 3, Unknown: 1, Retries: 3, PaidIDs: wantPaid}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Pay result (-want +got):\n%s", d)
	}
	// 2 404s for each of o5, o10, ..., o40 (o35 included: 404 first, then 409),
	// and at least 2 for o3 before it gave up.
	if res.NotFound < 8*2+2 {
		t.Errorf("NotFound = %d, want >= %d", res.NotFound, 8*2+2)
	}
	if f.calls["o1"] < 1 || f.calls["o5"] != 3 {
		t.Errorf("pays of o1 %d, of o5 %d; want o5 paid on its third try", f.calls["o1"], f.calls["o5"])
	}
	// o5 waited for two 404s (20 ms + 40 ms of backoff): the slowest payable
	// takes at least that; o3, never payable, is not in it.
	if res.TimeToPayable.Max < 60 || res.TimeToPayable.P50 <= 0 || res.TimeToPayable.Max >= 500 {
		t.Errorf("time to payable %+v ms, want p50 > 0 and 60 <= max < 500", res.TimeToPayable)
	}
	if res.FirstTry.Max <= 0 {
		t.Errorf("first try %+v ms, want > 0", res.FirstTry)
	}
}

func TestPayerShare(t *testing.T) {
	t.Parallel()
	f := &fakePayments{calls: map[string]int{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	p, err := NewPayer(context.Background(), PayConfig{URL: srv.URL, Share: 0.3, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 100; n++ {
		p.Offer(fmt.Sprintf("o%d", 1+35*n), time.Now(), time.Now().Add(time.Minute)) // paid: n%5 = n%7 = 1
	}
	res := p.Wait()
	if res.Chosen != 30 || res.Paid != 30 || len(f.calls) != 30 {
		t.Errorf("chose %d, paid %d, server saw %d orders; want 30 of 100 each", res.Chosen, res.Paid, len(f.calls))
	}
}

// TestPay: the batch form pays the share of the IDs it is given and gives
// up on an order still unknown at the deadline.
func TestPay(t *testing.T) {
	t.Parallel()
	f := &fakePayments{calls: map[string]int{}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ids := []string{"o1", "o2", "o3", "o4"} // o3 is never known
	res := Pay(context.Background(), srv.URL, ids, 1, 2, time.Now().Add(300*time.Millisecond))
	if d := cmp.Diff([]string{"o1", "o2", "o4"}, res.PaidIDs); d != "" || res.Chosen != 4 || res.Unknown != 1 {
		t.Errorf("Pay = %+v, want 4 chosen, o3 unknown, paid (-want +got):\n%s", res, d)
	}
}
