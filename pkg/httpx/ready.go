package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
)

// Check is one condition of a service's readiness: Run returns nil while
// what Name names (a database, the broker, the consumers) is usable.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// CheckTimeout bounds each check of /readyz: a probe (docker's, make run's)
// must get its answer well within its own timeout, also while a dependency
// hangs instead of refusing.
const CheckTimeout = time.Second

// Ready is the /readyz handler: it runs every check at once, each under
// timeout, and answers 200 {"status":"ready","checks":{name:"ok",...}} when
// all pass, else 503 {"status":"not_ready","not_ready":[names],"checks":
// {name:"ok" or the error}}.
//
// /healthz only says the process serves HTTP (liveness: restarting it would
// not help a database outage); /readyz says whether it can do its work now.
func Ready(timeout time.Duration, checks ...Check) gin.HandlerFunc {
	return func(c *gin.Context) {
		results := runChecks(c.Request.Context(), timeout, checks)
		status, body := http.StatusOK, gin.H{"status": "ready", "checks": results}
		var failed []string
		for _, ch := range checks {
			if results[ch.Name] != "ok" {
				failed = append(failed, ch.Name)
			}
		}
		if len(failed) > 0 {
			status, body = http.StatusServiceUnavailable, gin.H{"status": "not_ready", "not_ready": failed, "checks": results}
		}
		c.JSON(status, body)
	}
}

// runChecks returns every check's result by name: "ok" or its error.
func runChecks(ctx context.Context, timeout time.Duration, checks []Check) map[string]string {
	results := make(map[string]string, len(checks))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ch := range checks {
		wg.Go(func() {
			err := runCheck(ctx, timeout, ch)
			mu.Lock()
			defer mu.Unlock()
			results[ch.Name] = "ok"
			if err != nil {
				results[ch.Name] = err.Error()
			}
		})
	}
	wg.Wait()
	return results
}

// runCheck runs one check under timeout. A check that ignores its context
// is abandoned at the deadline (its goroutine finishes on its own), so one
// stuck dependency cannot hold the answer.
func runCheck(ctx context.Context, timeout time.Duration, ch Check) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ch.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("no answer within %s", timeout)
		}
		return ctx.Err()
	}
}
