package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

var httpClient = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second},
}

// Sale is the body of inventory-service's PUT /api/v1/products/{id}.
type Sale struct {
	Name         string `json:"name"`
	PriceCents   int64  `json:"price_cents"`
	Stock        int    `json:"stock"`
	PerUserLimit int    `json:"per_user_limit"`
}

// PutSale creates or resets the sale of productID on inventory-service at
// baseURL (http://host:port) with the admin token.
func PutSale(ctx context.Context, baseURL, token, productID string, s Sale) error {
	b, _ := json.Marshal(s)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, baseURL+"/api/v1/products/"+productID, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("put sale %s: %w", productID, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("put sale %s: %d %s", productID, resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// PayResult counts the payment attempts.
type PayResult struct {
	Chosen  int           `json:"chosen"`       // orders chosen to be paid
	Paid    int64         `json:"paid"`         // 200 paid
	Closed  int64         `json:"order_closed"` // 409 order_closed: the pay timeout won
	Unknown int64         `json:"unknown"`      // still 404 at the deadline
	Failed  int64         `json:"failed"`       // anything else
	Retries int64         `json:"retries_5xx"`  // 5xx answers retried (a client retries them)
	Took    time.Duration `json:"took_ns"`
	Sample  string        `json:"sample_error,omitempty"`
}

// Pay pays share (0..1) of ids on payment-service at baseURL, spread evenly
// over the list, with workers in parallel. An order payment-service does not
// know yet (404: its created event is still queued) is retried until deadline.
func Pay(ctx context.Context, baseURL string, ids []string, share float64, workers int, deadline time.Time) PayResult {
	var chosen []string
	for i, id := range ids {
		if int(float64(i+1)*share) > int(float64(i)*share) {
			chosen = append(chosen, id)
		}
	}
	res := PayResult{Chosen: len(chosen)}
	start := time.Now()
	var paid, closed, unknown, failed, retries atomic.Int64
	var sampleOnce sync.Once
	sample := func(s string) { sampleOnce.Do(func() { res.Sample = s }) }
	ch := make(chan string)
	var wg sync.WaitGroup
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ch {
				for {
					st, body, err := post(ctx, baseURL+"/api/v1/payments/"+id)
					switch {
					case err == nil && st == http.StatusOK:
						paid.Add(1)
					case err == nil && st == http.StatusConflict:
						closed.Add(1)
					case err == nil && st >= 500 && time.Now().Before(deadline):
						retries.Add(1)
						sample(fmt.Sprintf("%d %s (retried)", st, body))
						time.Sleep(250 * time.Millisecond)
						continue
					case (err == nil && st == http.StatusNotFound) || (err != nil && ctx.Err() == nil):
						if time.Now().Before(deadline) {
							time.Sleep(250 * time.Millisecond)
							continue
						}
						unknown.Add(1)
						if err != nil {
							sample(err.Error())
						}
					default:
						failed.Add(1)
						sample(fmt.Sprintf("%d %s %v", st, body, err))
					}
					break
				}
			}
		}()
	}
	for _, id := range chosen {
		select {
		case ch <- id:
		case <-ctx.Done():
		}
	}
	close(ch)
	wg.Wait()
	res.Paid, res.Closed, res.Unknown, res.Failed = paid.Load(), closed.Load(), unknown.Load(), failed.Load()
	res.Retries = retries.Load()
	res.Took = time.Since(start)
	return res
}

func post(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, bytes.TrimSpace(b), err
}
