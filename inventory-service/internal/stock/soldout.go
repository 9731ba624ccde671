package stock

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// sendSoldOut broadcasts the product's sold-out flag to every order-service
// replica. It is a sync send: the caller must know the replicas were told.
func sendSoldOut(ctx context.Context, p *mq.Producer, m *Metrics, productID string, soldOut bool) error {
	body, err := json.Marshal(events.SoldOut{
		Version: events.Version, ProductID: productID, SoldOut: soldOut, At: time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("encode sold-out of %s: %w", productID, err)
	}
	_, err = p.SendSync(ctx, mq.Outgoing{
		Topic: events.TopicSoldOut, Tag: events.TagSoldOut, Keys: []string{productID}, Body: body,
	})
	if err != nil {
		return fmt.Errorf("send sold-out %t of %s: %w", soldOut, productID, err)
	}
	m.SoldOutSent.WithLabelValues(strconv.FormatBool(soldOut)).Inc()
	return nil
}

// ledgerLine is the STOCK_LEDGER message of a movement. It carries the sale,
// so the ledger consumer need not read it back from stock_movements. No
// sharding key: the topic has one queue, which is the global order.
func ledgerLine(mv Movement) mq.Outgoing {
	return mq.Outgoing{
		Topic: events.TopicStockLedger, Tag: events.TagMovement, Keys: []string{mv.OrderID},
		Body: events.Marshal(events.StockMovement{
			Version: events.Version, EventID: mv.EventID(), OrderID: mv.OrderID,
			ProductID: mv.ProductID, Kind: mv.Kind, Delta: mv.Delta(), At: mv.CreatedAt, SaleID: mv.SaleID,
		}),
	}
}
