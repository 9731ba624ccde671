package events

// Redis keys shared by order-service (reservations) and inventory-service
// (sale warm-up and stock give-back). The product ID sits in a hash tag so a
// product's keys land in one Redis Cluster slot.

// StockKey holds the units of a product still available.
func StockKey(productID string) string { return "sk:{" + productID + "}:stock" }

// InfoKey is a hash with the product's "price" (cents) and per-user "limit".
func InfoKey(productID string) string { return "sk:{" + productID + "}:info" }

// UsersKey is a hash of user ID → units that user reserved of the product.
func UsersKey(productID string) string { return "sk:{" + productID + "}:users" }

// OrderKey is the hash of a reservation (an accepted, maybe not yet persisted order).
func OrderKey(orderID string) string { return "sk:order:" + orderID }

// IdempotencyKey maps a client's Idempotency-Key to the order it created.
func IdempotencyKey(userID, key string) string { return "sk:idem:" + userID + ":" + key }

// OutboxStream is the stream of created orders not yet handed to the broker.
const OutboxStream = "sk:outbox"

// LoadedKey is set by inventory-service once every product of its database
// has its info hash in Redis. Missing means Redis lost its data (restarted
// empty) or was never loaded: a product without an info hash may exist, so
// order-service answers "retry later" rather than "unknown product".
const LoadedKey = "sk:loaded"
