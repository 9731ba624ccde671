// Package intake accepts orders: local sold-out flag, the atomic Redis
// reservation, and the hand-off of the created event in the configured send
// mode (outbox, batch or sync). It does no MySQL work.
package intake

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"seckill/order-service/internal/outbox"
	"seckill/order-service/internal/stock"
	"seckill/pkg/events"
	"seckill/pkg/mq"
)

// Send modes (ORDER_SEND_MODE). In every mode the reservation script writes
// the order's outbox entry with the reservation: what Redis accepted always
// reaches the broker.
const (
	ModeOutbox = "outbox" // 202 once Redis holds the reservation and the outbox entry
	ModeBatch  = "batch"  // group commit: the batch is handed on before the 202
	ModeSync   = "sync"   // one SendSync per request before the 202
)

// ErrUnavailable means the order was not taken and the client should retry
// later (with the same Idempotency-Key): the outbox is older than
// Options.MaxOutboxAge, so what intake accepts is not reaching the broker.
var ErrUnavailable = errors.New("order not taken")

// Order is an accepted order.
type Order struct {
	OrderID     string
	PayDeadline time.Time // fixed at acceptance
	Replayed    bool
}

// Request is one order attempt from the HTTP API.
type Request struct {
	UserID, ProductID string
	Quantity          int
	IdempotencyKey    string
}

// Options are a Service's settings and the parts its mode needs.
type Options struct {
	Mode string // ModeOutbox, ModeBatch or ModeSync
	// TimeoutLevel is the delay level of the pay timeout (1..18): the pay
	// window is its delay.
	TimeoutLevel int
	Batcher      *Batcher        // batch mode (required there)
	Deleter      *outbox.Deleter // batch and sync modes (required there)
	// Outbox and MaxOutboxAge are the back-pressure: while the oldest entry
	// of the outbox (as Outbox last sampled it) is older than MaxOutboxAge,
	// Place takes no order (ErrUnavailable). 0 (or no Outbox): no bound.
	Outbox       *outbox.Monitor
	MaxOutboxAge time.Duration
}

// Service takes orders.
type Service struct {
	opts Options
	// payWindow is how long an accepted order can be paid (the delay of
	// the timeout level): its deadline is fixed at acceptance.
	payWindow time.Duration
	reserver  *stock.Reserver
	flags     *stock.Flags
	producer  *mq.Producer
	log       *slog.Logger
}

// New returns a Service.
func New(reserver *stock.Reserver, flags *stock.Flags, producer *mq.Producer, opts Options, log *slog.Logger) *Service {
	return &Service{opts: opts, payWindow: mq.DelayDuration(opts.TimeoutLevel),
		reserver: reserver, flags: flags, producer: producer, log: log}
}

// Place reserves stock for req and hands the order on. Rejections wrap
// stock.ErrSoldOut, stock.ErrLimitExceeded, stock.ErrUnknownProduct,
// stock.ErrNotLoaded or ErrUnavailable (back-pressure: see Options). A failed hand-off (batch and sync modes) is not an
// error: the order is accepted, in the outbox, and the sender hands it on.
func (s *Service) Place(ctx context.Context, req Request) (Order, error) {
	// A request with an Idempotency-Key may be the retry of an order accepted
	// before the sell-out: only the script can tell, so the flag's shortcut is
	// for requests without a key.
	if req.IdempotencyKey == "" && s.flags.SoldOut(req.ProductID) {
		s.rejected(ctx, req, "sold_out")
		return Order{}, fmt.Errorf("order %s (local flag): %w", req.ProductID, stock.ErrSoldOut)
	}
	// Back-pressure: with the broker down or refusing, the outbox would grow
	// without bound while every order is answered 202. Past the bound the
	// client is told to come back (with its Idempotency-Key) instead; no
	// Redis call is made. A sold-out product still answers sold out above.
	if s.opts.MaxOutboxAge > 0 && s.opts.Outbox != nil {
		if age := s.opts.Outbox.OldestAge(); age > s.opts.MaxOutboxAge {
			return Order{}, fmt.Errorf("outbox's oldest order waits for the broker since %s (bound %s): %w",
				age.Round(time.Millisecond), s.opts.MaxOutboxAge, ErrUnavailable)
		}
	}
	res, err := s.reserver.Reserve(ctx, stock.Request{
		OrderID: NewOrderID(), UserID: req.UserID, ProductID: req.ProductID, Quantity: req.Quantity,
		IdempotencyKey: req.IdempotencyKey, Now: time.Now(), PayWindow: s.payWindow,
	})
	switch {
	case errors.Is(err, stock.ErrSoldOut):
		s.rejected(ctx, req, "sold_out")
		if res.Remaining == 0 {
			s.flags.Set(req.ProductID, true)
		}
		return Order{}, err
	case errors.Is(err, stock.ErrLimitExceeded):
		s.rejected(ctx, req, "limit_exceeded")
		return Order{}, err
	case errors.Is(err, stock.ErrUnknownProduct):
		s.rejected(ctx, req, "unknown_product")
		return Order{}, err
	case err != nil:
		return Order{}, err
	}
	if !res.Replayed && res.Remaining == 0 {
		s.soldOut(ctx, req.ProductID)
	}
	if s.opts.Mode != ModeOutbox && !res.Replayed {
		s.handOff(ctx, res)
	}
	s.log.InfoContext(ctx, "order accepted", "order_id", res.OrderID, "user_id", req.UserID,
		"product_id", req.ProductID, "quantity", req.Quantity, "replayed", res.Replayed, "mode", s.opts.Mode)
	return Order{OrderID: res.OrderID, PayDeadline: res.PayDeadline, Replayed: res.Replayed}, nil
}

// handOff sends the order's created event and pay timeout now (batch and
// sync modes), then deletes its outbox entry. When the send fails the entry
// stays and the sender's sweep sends it later: the order was accepted by the
// script, and answering 503 for it would make a client's retry without an
// Idempotency-Key a second order (or limit_exceeded). A replay sends
// nothing: its first request's entry is in the outbox until it was sent.
func (s *Service) handOff(ctx context.Context, res stock.Reservation) {
	var err error
	if s.opts.Mode == ModeBatch {
		err = s.opts.Batcher.Send(ctx, res)
	} else {
		err = outbox.Handoff(ctx, s.producer, []stock.Reservation{res}, s.opts.TimeoutLevel)
	}
	if err != nil {
		s.log.WarnContext(ctx, "order accepted but not handed to the broker; the outbox sender hands it on",
			"order_id", res.OrderID, "mode", s.opts.Mode, "err", err)
		return
	}
	if err := s.opts.Deleter.Delete(ctx, res.OutboxID); err != nil {
		// Sent again by the sweep; consumers deduplicate on the event ID.
		s.log.WarnContext(ctx, "delete the outbox entry of an order handed on", "order_id", res.OrderID, "err", err)
	}
}

// Pending returns the Redis reservation of an order not yet persisted.
func (s *Service) Pending(ctx context.Context, orderID string) (stock.Reservation, error) {
	return s.reserver.Pending(ctx, orderID)
}

// soldOut flags productID here and broadcasts SOLDOUT{true} to every replica.
func (s *Service) soldOut(ctx context.Context, productID string) {
	s.flags.Set(productID, true)
	body, err := json.Marshal(events.SoldOut{Version: events.Version, ProductID: productID, SoldOut: true, At: time.Now().UTC()})
	if err != nil {
		return
	}
	if _, err := s.producer.SendSync(ctx, mq.Outgoing{
		Topic: events.TopicSoldOut, Tag: events.TagSoldOut, Keys: []string{productID}, Body: body,
	}); err != nil {
		// Other replicas learn it from Redis on their next attempt.
		s.log.WarnContext(ctx, "broadcast sold out", "product_id", productID, "err", err)
		return
	}
	s.log.InfoContext(ctx, "product sold out", "product_id", productID)
}

// rejected sends a statistics record oneway: it may be lost, and costs the
// request no round trip.
func (s *Service) rejected(ctx context.Context, req Request, reason string) {
	body, err := json.Marshal(events.RejectedAttempt{
		Version: events.Version, ProductID: req.ProductID, UserID: req.UserID, Reason: reason, At: time.Now().UTC(),
	})
	if err != nil {
		return
	}
	if err := s.producer.SendOneWay(ctx, mq.Outgoing{
		Topic: events.TopicOrderStats, Tag: events.TagRejected, Keys: []string{req.ProductID}, Body: body,
	}); err != nil {
		s.log.DebugContext(ctx, "rejected-attempt statistics lost", "err", err)
	}
}

// NewOrderID returns a time-ordered unique ID: 48 bits of Unix milliseconds
// then 80 random bits, as 32 hex digits (sorts by creation time).
func NewOrderID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go ≥1.24)
	return hex.EncodeToString(b[:])
}
