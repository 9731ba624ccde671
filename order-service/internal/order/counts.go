package order

import (
	"fmt"
	"time"

	"gorm.io/gorm"
)

// CountByProduct counts the orders created at or after since (all orders
// when since is zero), by product and status: product → status → orders.
// productIDs, when not empty, keeps only those products. It scans the
// orders since that moment, so callers pass the start of the sale they show.
func CountByProduct(tx *gorm.DB, since time.Time, productIDs []string) (map[string]map[string]int64, error) {
	q := tx.Model(&Order{}).Select("product_id, status, COUNT(*) AS n").Group("product_id, status")
	if !since.IsZero() {
		q = q.Where("created_at >= ?", since)
	}
	if len(productIDs) > 0 {
		q = q.Where("product_id IN ?", productIDs)
	}
	var rows []struct {
		ProductID string
		Status    string
		N         int64
	}
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("count orders by product and status: %w", err)
	}
	out := map[string]map[string]int64{}
	for _, r := range rows {
		if out[r.ProductID] == nil {
			out[r.ProductID] = map[string]int64{}
		}
		out[r.ProductID][r.Status] = r.N
	}
	return out, nil
}
