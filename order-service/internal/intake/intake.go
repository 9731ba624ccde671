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

// Send modes (ORDER_SEND_MODE).
const (
	ModeOutbox = "outbox" // 202 once Redis holds the reservation and the outbox entry
	ModeBatch  = "batch"  // group commit: 202 once the broker acked the batch
	ModeSync   = "sync"   // one SendSync per request
)

// ErrUnavailable means the order could not be handed to the broker (batch and
// sync modes). The reservation stays: a retry with the same Idempotency-Key
// returns the same order and sends its created event again.
var ErrUnavailable = errors.New("order could not be handed to the broker")

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

// Service takes orders.
type Service struct {
	mode string
	// payWindow is how long an accepted order can be paid (the delay of
	// timeoutLevel): its deadline is fixed at acceptance.
	payWindow    time.Duration
	timeoutLevel int
	reserver     *stock.Reserver
	flags        *stock.Flags
	producer     *mq.Producer
	batcher      *Batcher // batch mode only
	log          *slog.Logger
}

// New returns a Service. batcher is used (and required) in batch mode only.
// timeoutLevel is the delay level of the pay timeout (1..18): the pay window
// is its delay.
func New(mode string, timeoutLevel int, reserver *stock.Reserver, flags *stock.Flags, producer *mq.Producer, batcher *Batcher, log *slog.Logger) *Service {
	return &Service{mode: mode, payWindow: mq.DelayDuration(timeoutLevel), timeoutLevel: timeoutLevel,
		reserver: reserver, flags: flags, producer: producer, batcher: batcher, log: log}
}

// Place reserves stock for req and hands the order on. Rejections wrap
// stock.ErrSoldOut, stock.ErrLimitExceeded, stock.ErrUnknownProduct or
// stock.ErrNotLoaded; a failed hand-off wraps ErrUnavailable.
func (s *Service) Place(ctx context.Context, req Request) (Order, error) {
	// A request with an Idempotency-Key may be the retry of an order accepted
	// before the sell-out: only the script can tell, so the flag's shortcut is
	// for requests without a key.
	if req.IdempotencyKey == "" && s.flags.SoldOut(req.ProductID) {
		s.rejected(ctx, req, "sold_out")
		return Order{}, fmt.Errorf("order %s (local flag): %w", req.ProductID, stock.ErrSoldOut)
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
	// Outbox mode: the script wrote the outbox entry with the reservation.
	// The other modes send now, and again on an idempotent replay (the first
	// send may have failed; consumers deduplicate on the event ID).
	if s.mode != ModeOutbox {
		var err error
		if s.mode == ModeBatch {
			err = s.batcher.Send(ctx, res)
		} else {
			err = outbox.Handoff(ctx, s.producer, []stock.Reservation{res}, s.timeoutLevel)
		}
		if err != nil {
			s.log.WarnContext(ctx, "order reserved but not handed to the broker", "order_id", res.OrderID,
				"user_id", req.UserID, "product_id", req.ProductID, "mode", s.mode, "err", err)
			return Order{}, fmt.Errorf("hand off order %s: %w: %w", res.OrderID, ErrUnavailable, err)
		}
	}
	s.log.InfoContext(ctx, "order accepted", "order_id", res.OrderID, "user_id", req.UserID,
		"product_id", req.ProductID, "quantity", req.Quantity, "replayed", res.Replayed, "mode", s.mode)
	return Order{OrderID: res.OrderID, PayDeadline: res.PayDeadline, Replayed: res.Replayed}, nil
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
