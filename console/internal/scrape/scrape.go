// Package scrape reads what the console shows from the running system: each
// service's Prometheus /metrics (parsed with the Prometheus text parser),
// inventory-service's latest sales, order-service's order counts, and the
// brokers' queue offsets through the name server. It only reads.
package scrape

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxBody bounds what is read of one answer.
const maxBody = 16 << 20

// Families are the metric families of one /metrics page, by name.
type Families map[string]*dto.MetricFamily

// Client reads the services' HTTP endpoints.
type Client struct {
	http *http.Client
}

// New returns a Client whose every request gives up after timeout.
func New(timeout time.Duration) *Client {
	return &Client{http: &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
	}}
}

// Close drops the idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Metrics reads and parses baseURL/metrics in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context, baseURL string) (Families, error) {
	body, err := c.get(ctx, baseURL+"/metrics", "text/plain;version=0.0.4")
	if err != nil {
		return nil, err
	}
	defer body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(io.LimitReader(body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("parse %s/metrics: %w", baseURL, err)
	}
	return fams, nil
}

// Product is one sale as inventory-service's product API answers it.
type Product struct {
	ProductID     string    `json:"product_id"`
	Name          string    `json:"name"`
	Stock         int64     `json:"stock"`
	Available     int64     `json:"available"`
	Sold          int64     `json:"sold"`
	SaleID        int64     `json:"sale_id"`
	SaleStartedAt time.Time `json:"sale_started_at"`
}

// Products reads the limit latest sales (GET /api/v1/products?limit=).
func (c *Client) Products(ctx context.Context, inventoryURL string, limit int) ([]Product, error) {
	var out struct {
		Products []Product `json:"products"`
	}
	u := inventoryURL + "/api/v1/products?limit=" + strconv.Itoa(limit)
	if err := c.getJSON(ctx, u, &out); err != nil {
		return nil, err
	}
	return out.Products, nil
}

// OrderCounts reads the persisted orders of productIDs created at or after
// since, by product and status (GET /api/v1/order-counts).
func (c *Client) OrderCounts(ctx context.Context, orderURL string, since time.Time, productIDs []string) (map[string]map[string]int64, error) {
	q := url.Values{}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	for _, id := range productIDs {
		q.Add("product_id", id)
	}
	var out struct {
		Products []struct {
			ProductID string           `json:"product_id"`
			Counts    map[string]int64 `json:"counts"`
		} `json:"products"`
	}
	if err := c.getJSON(ctx, orderURL+"/api/v1/order-counts?"+q.Encode(), &out); err != nil {
		return nil, err
	}
	counts := make(map[string]map[string]int64, len(out.Products))
	for _, p := range out.Products {
		counts[p.ProductID] = p.Counts
	}
	return counts, nil
}

func (c *Client) getJSON(ctx context.Context, u string, v any) error {
	body, err := c.get(ctx, u, "application/json")
	if err != nil {
		return err
	}
	defer body.Close()
	if err := json.NewDecoder(io.LimitReader(body, maxBody)).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", u, err)
	}
	return nil
}

// get answers the body of a 200, or an error naming the URL and the status.
func (c *Client) get(ctx context.Context, u, accept string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err // *url.Error: names the method and URL
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s %s", u, resp.Status, b)
	}
	return resp.Body, nil
}
