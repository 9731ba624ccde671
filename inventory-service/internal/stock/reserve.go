package stock

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"seckill/pkg/dedup"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

//go:embed giveback.lua
var giveBackLua string

var giveBackScript = redis.NewScript(giveBackLua)

// Give-back dedup records in Redis: consuming expires quickly so a crashed
// consumer's claim is retaken; consumed outlives the broker's retries. After
// that the movement's redis_applied flag in the database still guards it.
const (
	giveBackConsumer     = "inventory.giveback"
	giveBackConsumingTTL = 30 * time.Second
	giveBackConsumedTTL  = 7 * 24 * time.Hour
)

// Reserver consumes the created and closed order events (handler
// inventory.reserve, group GID-inventory).
type Reserver struct {
	store    *Store
	rdb      redis.UniversalClient
	given    *dedup.Redis
	producer *mq.Producer
	metrics  *Metrics
	log      *slog.Logger
}

// NewReserver returns a Reserver writing through store, rdb and producer.
func NewReserver(store *Store, rdb redis.UniversalClient, producer *mq.Producer, m *Metrics, log *slog.Logger) *Reserver {
	return &Reserver{
		store: store, rdb: rdb, producer: producer, metrics: m, log: log,
		given: dedup.NewRedis(rdb, giveBackConsumer, giveBackConsumingTTL, giveBackConsumedTTL),
	}
}

// Handle applies one order event. nil acks; an error wrapping mq.ErrPermanent
// is logged and, after mq.PoisonRetries, dead-lettered by pkg/mq; any other
// error is redelivered.
func (r *Reserver) Handle(ctx context.Context, m mq.Message) error {
	switch m.Tag {
	case events.TagCreated:
		err := r.created(ctx, []mq.Message{m})
		if errors.Is(err, dedup.ErrSeen) {
			r.metrics.Duplicates.WithLabelValues(ConsumerReserve).Inc()
			r.log.InfoContext(ctx, "created event consumed before", "msg_id", m.ID, "order_id", m.Keys)
			return nil
		}
		return err
	case events.TagClosed:
		return r.closed(ctx, m)
	default:
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
}

// HandleBatch is the mq.BatchHandler of inventory.reserve: created events
// that pass the throttle together are decided in one transaction
// (Store.Deduct), exactly as one by one. Other sets are mq.ErrNoBatch; a
// failure (one consumed before among them) rolls back and pkg/mq gives each
// message to Handle.
func (r *Reserver) HandleBatch(ctx context.Context, ms []mq.Message) error {
	if len(ms) == 0 || ms[0].Tag != events.TagCreated {
		return mq.ErrNoBatch
	}
	return r.created(ctx, ms)
}

// deduction is what a created event asks Store.Deduct for.
func deduction(m mq.Message, ev events.OrderCreated) Deduction {
	return Deduction{
		MsgID: m.ID, EventID: ev.EventID, OrderID: ev.OrderID, UserID: ev.UserID,
		ProductID: ev.ProductID, Quantity: ev.Quantity, CreatedAt: ev.CreatedAt, SaleID: ev.SaleID,
	}
}

// created deducts (or refuses) the orders of created events.
func (r *Reserver) created(ctx context.Context, ms []mq.Message) error {
	evs, _, _, err := mq.Events(ms, events.TagCreated, events.Decode[events.OrderCreated],
		func(e *events.OrderCreated) (string, string) { return e.EventID, e.OrderID })
	if err != nil {
		return err
	}
	ds := make([]Deduction, len(evs))
	for i, ev := range evs {
		ds[i] = deduction(ms[i], ev)
	}
	mvs, err := r.store.Deduct(ctx, ds)
	if err != nil {
		return fmt.Errorf("deduct for %d orders from %s: %w", len(ds), ms[0].ID, err)
	}
	for i, mv := range mvs {
		d := ds[i]
		log := r.log.With("msg_id", d.MsgID, "event_id", d.EventID, "order_id", d.OrderID,
			"product_id", d.ProductID, "user_id", d.UserID, "quantity", mv.Quantity, "sale_id", mv.SaleID)
		if mv.Applied {
			r.metrics.Deductions.Inc()
			log.InfoContext(ctx, "stock deducted")
			continue
		}
		// Redis accepted a reservation the database cannot cover (or of a
		// sale reset since): the order is closed, its payment cancelled or
		// refunded — a business outcome, not a dead letter.
		r.metrics.Skipped.WithLabelValues(events.TagCreated, mv.Note).Inc()
		log.WarnContext(ctx, "deduction refused; order closed out_of_stock", "note", mv.Note)
	}
	return nil
}

func (r *Reserver) closed(ctx context.Context, m mq.Message) error {
	ev, err := events.Decode[events.OrderClosed](m.Body)
	if err != nil {
		return fmt.Errorf("closed %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	log := r.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID, "product_id", ev.ProductID)
	rel, err := r.store.Release(ctx, m.ID, ev.EventID, ev.OrderID)
	dup := errors.Is(err, dedup.ErrSeen)
	if dup {
		r.metrics.Duplicates.WithLabelValues(ConsumerReserve).Inc()
		rel, err = r.store.Movement(ctx, ev.OrderID, events.MovementRelease)
	}
	switch {
	case errors.Is(err, ErrInvariant):
		return fmt.Errorf("release for order %s: %w: %w", ev.OrderID, mq.ErrPermanent, err)
	case err != nil:
		// ErrNotDeducted included: the created event is still on its way.
		return fmt.Errorf("release for order %s: %w", ev.OrderID, err)
	}
	if rel.ProductID != ev.ProductID || rel.Quantity != ev.Quantity {
		log.WarnContext(ctx, "closed event disagrees with the deduction; releasing what was deducted",
			"deducted_product_id", rel.ProductID, "deducted_quantity", rel.Quantity, "quantity", ev.Quantity)
	}
	if !rel.Applied {
		if !dup {
			r.metrics.Skipped.WithLabelValues(events.TagClosed, rel.Note).Inc()
			log.WarnContext(ctx, "nothing to release", "note", rel.Note)
		}
		return nil
	}
	if dup {
		log.InfoContext(ctx, "release applied before; finishing the give-back")
	} else {
		r.metrics.Releases.Inc()
		log.InfoContext(ctx, "stock released", "quantity", rel.Quantity, "sale_id", rel.SaleID)
	}
	if rel.RedisApplied {
		return nil
	}
	return r.giveBack(ctx, rel, log)
}

// giveBack returns a released order's units to the Redis stock exactly once:
// a pkg/dedup.Redis record keyed by the closed event's business key covers
// redeliveries, and the movement's redis_applied flag covers them after the
// record expired. The script itself marks the record consumed with the units
// (no Commit step that a crash could miss), so a run that comes again — the
// Redis client resending it after a lost reply, or a redelivery once the
// consuming claim expired — finds it and adds nothing.
//
// While Redis lost the stock key, or when the key was rewritten whole since
// the flag was read (a rebuild counts every release it finds in the database
// and sets their flags before it writes the key), nothing is given back and
// ErrStockRebuilding asks for a redelivery, which reads the flag again.
func (r *Reserver) giveBack(ctx context.Context, rel Movement, log *slog.Logger) error {
	// The generation is read before the flag: see giveback.lua.
	gen, err := r.rdb.Get(ctx, genKey(rel.ProductID)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("give back order %s: read stock generation: %w", rel.OrderID, err)
	}
	cur, err := r.store.Movement(ctx, rel.OrderID, events.MovementRelease)
	if err != nil {
		return fmt.Errorf("give back order %s: %w", rel.OrderID, err)
	}
	if cur.RedisApplied {
		log.InfoContext(ctx, "release already in the redis stock (given back, or counted by a stock rebuild)")
		return nil
	}
	p, err := r.store.Product(ctx, rel.ProductID)
	if err != nil {
		return fmt.Errorf("give back order %s: %w", rel.OrderID, err)
	}
	if p.SaleID != rel.SaleID {
		// A reset warmed Redis from the database after the release: the
		// units are already in the new sale's stock.
		log.WarnContext(ctx, "sale reset since the release; nothing to give back in redis", "sale_id", p.SaleID)
		return nil
	}
	key := events.EventID(rel.OrderID, events.TagClosed)
	switch err := r.given.Begin(ctx, key); {
	case errors.Is(err, dedup.ErrSeen):
		return r.givenBefore(ctx, rel)
	case err != nil:
		// dedup.ErrInProgress included: another consumer is on it; retry later.
		return fmt.Errorf("claim redis give-back of order %s: %w", rel.OrderID, err)
	}
	before, err := giveBackScript.Run(ctx, r.rdb,
		[]string{events.StockKey(rel.ProductID), events.UsersKey(rel.ProductID), genKey(rel.ProductID), r.given.Key(key)},
		rel.Quantity, rel.UserID, gen, dedup.Consumed, r.given.ConsumedTTL().Milliseconds()).Int64()
	if err == nil && before == -3 {
		// The script found its own record: this give-back was done by an
		// earlier run whose reply never came back.
		return r.givenBefore(ctx, rel)
	}
	switch {
	case err != nil:
		err = fmt.Errorf("give back %d of %s in redis: %w", rel.Quantity, rel.ProductID, err)
	case before == -1:
		err = fmt.Errorf("give back %d of %s: stock key missing: %w", rel.Quantity, rel.ProductID, ErrStockRebuilding)
	case before == -2:
		err = fmt.Errorf("give back %d of %s: stock key rewritten meanwhile: %w", rel.Quantity, rel.ProductID, ErrStockRebuilding)
	}
	if err != nil {
		if aerr := r.given.Abort(context.WithoutCancel(ctx), key); aerr != nil {
			return errors.Join(err, fmt.Errorf("abort redis give-back claim: %w", aerr))
		}
		return err
	}
	r.metrics.GiveBacks.Inc()
	switch {
	case before == 0:
		if err := sendSoldOut(ctx, r.producer, r.metrics, rel.ProductID, false); err != nil {
			return err
		}
		log.InfoContext(ctx, "stock back in redis; sold-out cleared", "quantity", rel.Quantity)
	default:
		log.InfoContext(ctx, "stock back in redis", "quantity", rel.Quantity, "stock_before", before)
	}
	return r.store.MarkRedisApplied(ctx, rel.ID)
}

// givenBefore finishes a give-back done before (a crash or a failed send
// after the script): it redoes only what follows the script.
func (r *Reserver) givenBefore(ctx context.Context, rel Movement) error {
	if err := r.clearSoldOutIfAvailable(ctx, rel.ProductID); err != nil {
		return err
	}
	return r.store.MarkRedisApplied(ctx, rel.ID)
}

// clearSoldOutIfAvailable re-sends SOLDOUT false when the product has stock in
// Redis: the send may have been lost with the consumer that gave units back.
func (r *Reserver) clearSoldOutIfAvailable(ctx context.Context, productID string) error {
	n, err := r.rdb.Get(ctx, events.StockKey(productID)).Int64()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read redis stock of %s: %w", productID, err)
	}
	if n <= 0 {
		return nil
	}
	return sendSoldOut(ctx, r.producer, r.metrics, productID, false)
}
