package stock

import (
	"context"
	"fmt"
)

// RecentSales reads the limit products whose sale started last, newest
// first: what a console shows of the sales on now.
func (s *Store) RecentSales(ctx context.Context, limit int) ([]Product, error) {
	var ps []Product
	err := s.db.WithContext(ctx).Order("sale_started_at DESC, product_id").Limit(limit).Find(&ps).Error
	if err != nil {
		return nil, fmt.Errorf("read the %d latest sales: %w", limit, err)
	}
	return ps, nil
}

// RecentSales reads the limit products whose sale started last, newest first.
func (s *Sales) RecentSales(ctx context.Context, limit int) ([]Product, error) {
	return s.store.RecentSales(ctx, limit)
}
