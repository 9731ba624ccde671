package stock

import (
	"context"
	_ "embed"
	"encoding/json"
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

// maxQuantity bounds an order's quantity; anything above is a malformed event.
const maxQuantity = 10_000_000

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
		return r.created(ctx, m)
	case events.TagClosed:
		return r.closed(ctx, m)
	default:
		return fmt.Errorf("message %s: unexpected tag %q: %w", m.ID, m.Tag, mq.ErrPermanent)
	}
}

// decodeCreated decodes and validates a created event.
func decodeCreated(m mq.Message) (events.OrderCreated, error) {
	var ev events.OrderCreated
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		return ev, fmt.Errorf("decode created %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	if err := validateOrder(ev.Version, ev.EventID, ev.OrderID, ev.ProductID, ev.Quantity); err != nil {
		return ev, fmt.Errorf("created %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	return ev, nil
}

// deduction is what a created event asks Store.Deduct for.
func deduction(m mq.Message, ev events.OrderCreated) Deduction {
	return Deduction{
		MsgID: m.ID, EventID: ev.EventID, OrderID: ev.OrderID, UserID: ev.UserID,
		ProductID: ev.ProductID, Quantity: ev.Quantity, CreatedAt: ev.CreatedAt,
	}
}

func (r *Reserver) created(ctx context.Context, m mq.Message) error {
	ev, err := decodeCreated(m)
	if err != nil {
		return err
	}
	log := r.log.With("msg_id", m.ID, "event_id", ev.EventID, "order_id", ev.OrderID,
		"product_id", ev.ProductID, "user_id", ev.UserID)
	mv, err := r.store.Deduct(ctx, deduction(m, ev))
	dup := errors.Is(err, dedup.ErrSeen)
	if dup {
		r.metrics.Duplicates.WithLabelValues(ConsumerReserve).Inc()
		mv, err = r.store.Movement(ctx, ev.OrderID, events.MovementDeduct)
	}
	if err != nil {
		return fmt.Errorf("deduct for order %s: %w", ev.OrderID, err)
	}
	if !mv.Applied {
		if dup {
			log.InfoContext(ctx, "created event consumed before without a stock effect", "note", mv.Note)
			return nil
		}
		r.metrics.Skipped.WithLabelValues(events.TagCreated, mv.Note).Inc()
		switch mv.Note {
		case NoteStaleSale:
			log.WarnContext(ctx, "order belongs to an older sale; stock untouched")
			return nil
		case NoteUnknownProduct:
			return fmt.Errorf("order %s: product %s: %w: %w", ev.OrderID, ev.ProductID, ErrUnknownProduct, mq.ErrPermanent)
		default:
			// Redis accepted a reservation the database cannot cover: the
			// copies disagree. Retrying cannot fix that, so the event is
			// recorded, logged at Error, counted and dead-lettered (pkg/mq).
			return fmt.Errorf("order %s wants %d of %s: %w: %w", ev.OrderID, ev.Quantity, ev.ProductID, ErrRefused, mq.ErrPermanent)
		}
	}
	if dup {
		log.InfoContext(ctx, "deduction applied before; re-sending its ledger line")
	} else {
		r.metrics.Deductions.Inc()
		log.InfoContext(ctx, "stock deducted", "quantity", mv.Quantity, "sale_id", mv.SaleID)
	}
	return sendLedger(ctx, r.producer, mv)
}

func (r *Reserver) closed(ctx context.Context, m mq.Message) error {
	var ev events.OrderClosed
	if err := json.Unmarshal(m.Body, &ev); err != nil {
		return fmt.Errorf("decode closed %s: %w: %w", m.ID, mq.ErrPermanent, err)
	}
	if err := validateOrder(ev.Version, ev.EventID, ev.OrderID, ev.ProductID, ev.Quantity); err != nil {
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
		log.InfoContext(ctx, "release applied before; finishing its follow-ups")
	} else {
		r.metrics.Releases.Inc()
		log.InfoContext(ctx, "stock released", "quantity", rel.Quantity, "sale_id", rel.SaleID)
	}
	if !rel.RedisApplied {
		if err := r.giveBack(ctx, rel, log); err != nil {
			return err
		}
	}
	return sendLedger(ctx, r.producer, rel)
}

// giveBack returns a released order's units to the Redis stock exactly once:
// a pkg/dedup.Redis record keyed by the closed event's business key covers
// redeliveries, and the movement's redis_applied flag covers them after the
// record expired. The remaining gap is a crash between the script and Commit:
// once the consuming claim expires the give-back would run again.
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
		// Given back before a crash or a failed send: redo only what follows.
		if err := r.clearSoldOutIfAvailable(ctx, rel.ProductID); err != nil {
			return err
		}
		return r.store.MarkRedisApplied(ctx, rel.ID)
	case err != nil:
		// dedup.ErrInProgress included: another consumer is on it; retry later.
		return fmt.Errorf("claim redis give-back of order %s: %w", rel.OrderID, err)
	}
	before, err := giveBackScript.Run(ctx, r.rdb,
		[]string{events.StockKey(rel.ProductID), events.UsersKey(rel.ProductID), genKey(rel.ProductID)},
		rel.Quantity, rel.UserID, gen).Int64()
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
	if err := r.given.Commit(ctx, key); err != nil {
		// The units are back; redis_applied below still stops a second give-back.
		log.ErrorContext(ctx, "record redis give-back", "err", err)
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

// validateOrder checks the fields created and closed events share.
func validateOrder(version int, eventID, orderID, productID string, qty int) error {
	switch {
	case version != events.Version:
		return fmt.Errorf("version %d, want %d", version, events.Version)
	case eventID == "":
		return errors.New("event_id empty")
	case orderID == "":
		return errors.New("order_id empty")
	case productID == "":
		return errors.New("product_id empty")
	case qty < 1 || qty > maxQuantity:
		return fmt.Errorf("quantity %d out of 1..%d", qty, maxQuantity)
	}
	return nil
}
