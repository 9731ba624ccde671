package stock

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Sales creates and resets sales: the database first, then Redis warmed from
// it, then the sold-out flag broadcast.
type Sales struct {
	store    *Store
	rdb      redis.UniversalClient
	producer *mq.Producer
	metrics  *Metrics
	log      *slog.Logger
}

// NewSales returns Sales writing through store, rdb and producer.
func NewSales(store *Store, rdb redis.UniversalClient, producer *mq.Producer, m *Metrics, log *slog.Logger) *Sales {
	return &Sales{store: store, rdb: rdb, producer: producer, metrics: m, log: log}
}

// Put creates the product or starts a new sale of it with sale's values. When
// it fails after the database step, calling it again starts yet another sale
// and repairs Redis and the replicas' flags.
func (s *Sales) Put(ctx context.Context, productID string, sale Sale) (Product, error) {
	p, err := s.store.ResetSale(ctx, productID, sale)
	if err != nil {
		return Product{}, err
	}
	if err := s.warm(ctx, p); err != nil {
		return Product{}, err
	}
	if err := sendSoldOut(ctx, s.producer, s.metrics, productID, p.Available() <= 0); err != nil {
		return Product{}, err
	}
	s.metrics.SaleResets.Inc()
	s.log.InfoContext(ctx, "sale started", "product_id", productID, "sale_id", p.SaleID,
		"stock", p.Stock, "price_cents", p.PriceCents, "per_user_limit", p.PerUserLimit)
	return p, nil
}

// Product reads a product from the database; ErrUnknownProduct when there is none.
func (s *Sales) Product(ctx context.Context, productID string) (Product, error) {
	return s.store.Product(ctx, productID)
}

// warm copies the product's sale into Redis in one MULTI: available stock,
// price, limit and sale_id (each reservation takes it along: the sale of
// the stock it decremented), and no per-user counts (a new sale starts them
// over). It
// writes a new stock generation and deletes the rebuild lock: a rebuild of the
// previous sale still under way cannot publish over it.
func (s *Sales) warm(ctx context.Context, p Product) error {
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, events.StockKey(p.ProductID), p.Available(), 0)
		pipe.Del(ctx, events.InfoKey(p.ProductID))
		pipe.HSet(ctx, events.InfoKey(p.ProductID), "price", p.PriceCents, "limit", p.PerUserLimit, "sale_id", p.SaleID)
		pipe.Del(ctx, events.UsersKey(p.ProductID))
		pipe.Set(ctx, genKey(p.ProductID), newToken(), 0)
		pipe.Del(ctx, lockKey(p.ProductID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("warm redis for %s: %w", p.ProductID, err)
	}
	return nil
}
