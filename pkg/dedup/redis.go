package dedup

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	stateConsuming = "consuming"
	stateConsumed  = "consumed"
)

// Consumed is the value of a consumed key. A Redis script that applies the
// effect can write it itself (SET Key(key) Consumed, with ConsumedTTL), so
// the record and the effect are one atomic step: a run of the script that
// comes again finds it, and a crash before Commit leaves the key consumed.
const Consumed = stateConsumed

// Redis records consumed message keys in Redis for effects that live outside
// a database transaction (e.g. giving stock back in Redis). A key is first
// "consuming" (expires after consumingTTL, so a crashed consumer's claim
// frees itself) and then "consumed" (kept for consumedTTL, 0 = forever).
// Keys are sk:dedup:<consumer>:<key>.
type Redis struct {
	rdb          redis.UniversalClient
	consumer     string
	consumingTTL time.Duration
	consumedTTL  time.Duration
}

// NewRedis returns a Redis dedup store for one consumer name.
func NewRedis(rdb redis.UniversalClient, consumer string, consumingTTL, consumedTTL time.Duration) *Redis {
	return &Redis{rdb: rdb, consumer: consumer, consumingTTL: consumingTTL, consumedTTL: consumedTTL}
}

// Key is the Redis key Begin/Commit/Abort use for key.
func (r *Redis) Key(key string) string { return "sk:dedup:" + r.consumer + ":" + key }

// ConsumedTTL is how long a consumed key is kept (0 = forever).
func (r *Redis) ConsumedTTL() time.Duration { return r.consumedTTL }

// beginScript claims the key or returns the state that blocks the claim, in
// one step so an expiry between "claim failed" and "read state" cannot lie.
// A claim holds "consuming:<token>" with a token new to each Begin, so the
// same call sent again by the Redis client (its reply was lost) finds its
// own claim and owns it, instead of waiting for it to expire.
var beginScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return ''
end
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  return ''
end
return v
`)

// Begin claims key. nil means the caller owns it and must Commit or Abort;
// ErrSeen means it was consumed before (ack, do nothing); ErrInProgress means
// another consumer holds it (retry later).
func (r *Redis) Begin(ctx context.Context, key string) error {
	var tok [12]byte
	_, _ = rand.Read(tok[:]) // crypto/rand.Read never fails (Go ≥1.24)
	state, err := beginScript.Run(ctx, r.rdb, []string{r.Key(key)},
		stateConsuming+":"+hex.EncodeToString(tok[:]), r.consumingTTL.Milliseconds()).Text()
	if err != nil {
		return fmt.Errorf("dedup begin %s: %w", r.Key(key), err)
	}
	switch state {
	case "":
		return nil
	case stateConsumed:
		return fmt.Errorf("%s: %w", r.Key(key), ErrSeen)
	default:
		return fmt.Errorf("%s: %w", r.Key(key), ErrInProgress)
	}
}

// Commit marks key consumed.
func (r *Redis) Commit(ctx context.Context, key string) error {
	// KEEPTTL is not used: consumed gets its own, longer lifetime.
	if err := r.rdb.Set(ctx, r.Key(key), stateConsumed, r.consumedTTL).Err(); err != nil {
		return fmt.Errorf("dedup commit %s: %w", r.Key(key), err)
	}
	return nil
}

var abortScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`)

// Abort releases a consuming claim so the next delivery can take it; a key
// already consumed is left alone.
func (r *Redis) Abort(ctx context.Context, key string) error {
	err := abortScript.Run(ctx, r.rdb, []string{r.Key(key)}, stateConsuming).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("dedup abort %s: %w", r.Key(key), err)
	}
	return nil
}
