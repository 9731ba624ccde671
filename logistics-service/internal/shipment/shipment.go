// Package shipment creates one shipment per confirmed order and announces it
// with a shipped event.
package shipment

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"
)

// StatusCreated is the status of a new shipment (the only one so far).
const StatusCreated = "created"

// ErrNotFound: no shipment for the order.
var ErrNotFound = errors.New("shipment not found")

// Shipment is one row of the shipments table.
type Shipment struct {
	OrderID    string `gorm:"primaryKey"`
	ShipmentID string
	Status     string
	CreatedAt  time.Time
}

// TableName is the table in migrations/001_shipments.sql.
func (Shipment) TableName() string { return "shipments" }

// Metrics counts shipments.
type Metrics struct {
	shipments prometheus.Counter
}

// NewMetrics registers logistics_shipments_total on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{shipments: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "logistics_shipments_total",
		Help: "Shipments created.",
	})}
	reg.MustRegister(m.shipments)
	return m
}

// Get returns the shipment of orderID or ErrNotFound.
func Get(ctx context.Context, gdb *gorm.DB, orderID string) (Shipment, error) {
	var s Shipment
	err := gdb.WithContext(ctx).Where("order_id = ?", orderID).Take(&s).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Shipment{}, ErrNotFound
	}
	if err != nil {
		return Shipment{}, fmt.Errorf("read shipment %s: %w", orderID, err)
	}
	return s, nil
}

// insert creates the shipment of orderID inside tx, or returns the existing
// one with created false.
func insert(ctx context.Context, tx *gorm.DB, orderID string) (s Shipment, created bool, err error) {
	s = Shipment{OrderID: orderID, ShipmentID: rand.Text(), Status: StatusCreated, CreatedAt: time.Now().UTC()}
	err = tx.Create(&s).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		s, err = Get(ctx, tx, orderID)
		return s, false, err
	}
	if err != nil {
		return Shipment{}, false, fmt.Errorf("insert shipment %s: %w", orderID, err)
	}
	return s, true, nil
}
