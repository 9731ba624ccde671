package stock_test

import (
	"encoding/json"
	"testing"
	"time"

	"seckill/inventory-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// createdOfSale is the created event of o as order-service sends it: with
// the sale_id its reservation read from the product's Redis info.
func createdOfSale(t *testing.T, msgID string, o order, saleID int64) mq.Message {
	t.Helper()
	b, err := json.Marshal(events.Created(events.OrderCreated{
		OrderID: o.id, UserID: o.user, ProductID: o.product, Quantity: o.qty, AmountCents: 100,
		CreatedAt: o.createdAt, PayDeadline: o.createdAt.Add(time.Minute),
	}))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	body["sale_id"] = saleID
	return msg(t, msgID, events.TagCreated, body)
}

// TestDeductDecidesBySaleID: after a reset, a deduction is decided by the
// sale the reservation took its units from, not by comparing the
// order-service clock (created_at) with the inventory clock
// (sale_started_at). An order reserved against the old stock after the new
// sale's start was written (the reset writes the database before it warms
// Redis) is refused and its movement stays in the old sale; an order of the
// new sale whose created_at is behind sale_started_at (a clock behind) is
// deducted from it.
func TestDeductDecidesBySaleID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p := e.product(t, 10, 5)
	if _, err := e.sales.Put(t.Context(), p, stock.Sale{Name: "again", PriceCents: 100, Stock: 6, PerUserLimit: 5}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.rdb.HGet(t.Context(), events.InfoKey(p), "sale_id").Int64(); got != 2 {
		t.Errorf("redis info sale_id after the reset = %d, want 2", got)
	}
	window := e.newOrder(t, p, "u1", 2) // old stock, reserved after sale 2's start was written
	skewed := e.newOrder(t, p, "u2", 3) // new stock, its clock a minute behind
	skewed.createdAt = time.Now().UTC().Add(-time.Minute)
	e.handle(t, createdOfSale(t, "c1", window, 1), createdOfSale(t, "c2", skewed, 2))

	if pr := e.dbProduct(t, p); pr.SaleID != 2 || pr.Sold != 3 {
		t.Errorf("product = sale %d sold %d, want sale 2 sold 3 (the skewed order only)", pr.SaleID, pr.Sold)
	}
	for _, tc := range []struct {
		o       order
		applied bool
		note    string
		sale    int64
	}{{window, false, stock.NoteStaleSale, 1}, {skewed, true, "", 2}} {
		mv, err := e.store.Movement(t.Context(), tc.o.id, events.MovementDeduct)
		if err != nil {
			t.Fatal(err)
		}
		if mv.Applied != tc.applied || mv.Note != tc.note || mv.SaleID != tc.sale {
			t.Errorf("deduction of %s = applied %v note %q sale %d, want %v %q %d", tc.o.id, mv.Applied, mv.Note, mv.SaleID, tc.applied, tc.note, tc.sale)
		}
	}
}
