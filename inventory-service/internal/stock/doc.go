// Package stock keeps a product's stock in the database (the truth) and in
// Redis (the copy order-service reserves from), and consumes the order events
// that move it:
//
//   - created: the order's quantity is added to products.sold, guarded so the
//     database never oversells, then a deduct line goes to the stock ledger.
//   - closed: the quantity goes back to sold in the database and, exactly once,
//     to the Redis stock; SOLDOUT false is broadcast when the Redis stock comes
//     back from 0; then a release line goes to the ledger.
//   - STOCK_LEDGER movements are appended, in global order, to stock_ledger.
//
// Every effect is written in one transaction together with its pkg/dedup claim
// on the broker message ID and the event's business key. Follow-up messages
// (ledger lines, SOLDOUT) are re-sent when a redelivery finds the effect
// already applied, so a crash between commit and send loses nothing.
//
// Created events that pkg/mq hands over together are deducted as one batch
// (Reserver.HandleBatch, Store.DeductBatch): one transaction with one lock
// per product, one claim and one insert for all of them, and one send of
// their ledger lines. A batch is only taken when it ends exactly as the events
// would one by one; anything else (a redelivery, a closed event, an older
// sale, not enough stock, a duplicate) goes to Handle, message by message.
//
// Redis and the database can disagree only through a bug or a lost Redis: a
// created event the database stock cannot cover is recorded as refused
// (applied = 0), logged at Error and dead-lettered as permanent (retrying
// cannot make room), so the database never oversells and its close is a no-op.
//
// A lost Redis (restarted empty) is rebuilt from the database by the
// Rebuilder (rebuild.go): the product's info first, its stock only once
// GID-inventory has consumed every created event the broker held, with the
// per-user counts; give-backs wait for it (giveback.lua). See docs/design.md,
// "Redis restarted empty".
//
// Per-user limit: a closed order gives its units back to the user's count in
// the users hash as well as to the stock (the user ID comes from the deduct
// movement), so an unpaid, closed order does not count against the limit.
//
// Sale resets: a PUT starts a new sale (sold = 0, sale_id + 1,
// sale_started_at = now). A created event whose order was created before
// sale_started_at belongs to an older sale and is recorded without touching
// stock; a closed event only gives stock back when its deduction was applied in
// the product's current sale. Orders accepted while a reset is under way are
// the admin's risk: reset a product only when its sale is quiet.
package stock
