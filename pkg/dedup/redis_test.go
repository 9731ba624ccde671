package dedup_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"seckill/pkg/dedup"
	"seckill/pkg/testenv"
)

func TestRedisStates(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	tests := []struct {
		name  string
		steps func(ctx context.Context, r *dedup.Redis, key string) error // returns the last step's error
		want  error
	}{
		{"first Begin owns", func(ctx context.Context, r *dedup.Redis, k string) error {
			return r.Begin(ctx, k)
		}, nil},
		{"Begin while consuming", func(ctx context.Context, r *dedup.Redis, k string) error {
			if err := r.Begin(ctx, k); err != nil {
				return err
			}
			return r.Begin(ctx, k)
		}, dedup.ErrInProgress},
		{"Begin after Commit", func(ctx context.Context, r *dedup.Redis, k string) error {
			if err := r.Begin(ctx, k); err != nil {
				return err
			}
			if err := r.Commit(ctx, k); err != nil {
				return err
			}
			return r.Begin(ctx, k)
		}, dedup.ErrSeen},
		{"Begin after Abort owns again", func(ctx context.Context, r *dedup.Redis, k string) error {
			if err := r.Begin(ctx, k); err != nil {
				return err
			}
			if err := r.Abort(ctx, k); err != nil {
				return err
			}
			return r.Begin(ctx, k)
		}, nil},
		{"Abort after Commit keeps consumed", func(ctx context.Context, r *dedup.Redis, k string) error {
			if err := r.Begin(ctx, k); err != nil {
				return err
			}
			if err := r.Commit(ctx, k); err != nil {
				return err
			}
			if err := r.Abort(ctx, k); err != nil {
				return err
			}
			return r.Begin(ctx, k)
		}, dedup.ErrSeen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			consumer := testenv.Unique(t, "c")
			r := dedup.NewRedis(rdb, consumer, time.Minute, time.Hour)
			key := "msg-1"
			t.Cleanup(func() { rdb.Del(context.Background(), r.Key(key)) })
			err := tc.steps(t.Context(), r, key)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("last step error = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestRedisTTLs(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	ctx := t.Context()
	r := dedup.NewRedis(rdb, testenv.Unique(t, "c"), 300*time.Millisecond, 0)
	t.Cleanup(func() { rdb.Del(context.Background(), r.Key("a"), r.Key("b")) })

	if err := r.Begin(ctx, "a"); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	ttl, err := rdb.PTTL(ctx, r.Key("a")).Result()
	if err != nil || ttl <= 0 || ttl > 300*time.Millisecond {
		t.Fatalf("consuming PTTL = %v (%v), want in (0, 300ms]", ttl, err)
	}
	// A crashed consumer's claim frees itself: wait out the TTL Redis reports.
	time.Sleep(ttl + 50*time.Millisecond)
	if err := r.Begin(ctx, "a"); err != nil {
		t.Fatalf("Begin after the consuming TTL = %v, want nil", err)
	}

	// consumedTTL 0 keeps the consumed record forever.
	if err := r.Begin(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := r.Commit(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if ttl, err := rdb.PTTL(ctx, r.Key("b")).Result(); err != nil || ttl != -1*time.Nanosecond && ttl != -1*time.Millisecond {
		t.Errorf("consumed PTTL = %v (%v), want -1 (no expiry)", ttl, err)
	}
}

func TestRedisConcurrentBeginOneWins(t *testing.T) {
	t.Parallel()
	rdb := testenv.Redis(t)
	r := dedup.NewRedis(rdb, testenv.Unique(t, "c"), time.Minute, time.Hour)
	t.Cleanup(func() { rdb.Del(context.Background(), r.Key("k")) })
	const n = 50
	var (
		wg                  sync.WaitGroup
		mu                  sync.Mutex
		owned, busy, others int
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.Begin(t.Context(), "k")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				owned++
			case errors.Is(err, dedup.ErrInProgress):
				busy++
			default:
				others++
				t.Errorf("Begin error = %v", err)
			}
		}()
	}
	wg.Wait()
	if owned != 1 || busy != n-1 {
		t.Errorf("concurrent Begin: %d owned, %d in progress, %d other; want 1, %d, 0", owned, busy, others, n-1)
	}
}

// TestRedisBeginClientRetry: Begin's reply is lost on the wire and go-redis
// sends the same call again; the retry owns the claim it made, instead of
// finding it in progress until it expires.
func TestRedisBeginClientRetry(t *testing.T) {
	t.Parallel()
	lr := testenv.RedisLostReply(t, "evalsha")
	r := dedup.NewRedis(lr.Client, testenv.Unique(t, "c"), time.Minute, time.Hour)
	t.Cleanup(func() { lr.Client.Del(context.Background(), r.Key("warm-up"), r.Key("k")) })
	if err := r.Begin(t.Context(), "warm-up"); err != nil { // loads the script: the lost reply is Begin's own
		t.Fatal(err)
	}
	lr.Arm()
	if err := r.Begin(t.Context(), "k"); err != nil {
		t.Fatalf("Begin with its reply lost once = %v, want nil", err)
	}
	if lr.Lost() != 1 {
		t.Fatalf("replies lost = %d, want 1", lr.Lost())
	}
	if err := r.Begin(t.Context(), "k"); !errors.Is(err, dedup.ErrInProgress) {
		t.Errorf("another Begin = %v, want %v", err, dedup.ErrInProgress)
	}
}
