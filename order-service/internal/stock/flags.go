package stock

import (
	"sync"
	"time"
)

// Flags are this replica's local sold-out flags, set and cleared by the
// SOLDOUT broadcast, so a sold-out product is rejected without a Redis call.
// A flag expires after its TTL: a missed "stock is back" broadcast (or one
// that raced with setting the flag) costs one Redis call per TTL, not the sale.
type Flags struct {
	ttl  time.Duration
	mu   sync.RWMutex
	sold map[string]time.Time // product → flag expiry
}

// NewFlags returns empty flags (nothing sold out) whose flags last ttl.
func NewFlags(ttl time.Duration) *Flags {
	return &Flags{ttl: ttl, sold: make(map[string]time.Time)}
}

// SoldOut reports whether productID is flagged sold out.
func (f *Flags) SoldOut(productID string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	exp, ok := f.sold[productID]
	return ok && time.Now().Before(exp)
}

// Set sets (true) or clears (false) the flag of productID.
func (f *Flags) Set(productID string, soldOut bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if soldOut {
		f.sold[productID] = time.Now().Add(f.ttl)
		return
	}
	delete(f.sold, productID)
}
