package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
