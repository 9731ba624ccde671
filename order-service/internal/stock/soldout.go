package stock

import (
	"context"
	"encoding/json"
	"fmt"

	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Handle applies a SOLDOUT broadcast (GID-order-soldout) to the flags.
func (f *Flags) Handle(_ context.Context, m mq.Message) error {
	var ev events.SoldOut
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		return fmt.Errorf("decode soldout %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	if ev.ProductID == "" {
		return fmt.Errorf("decode soldout %s: empty product_id: %w", m.ID, mq.ErrPermanent)
	}
	f.Set(ev.ProductID, ev.SoldOut)
	return nil
}
