package dedup_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"seckill/pkg/dedup"
	"seckill/pkg/mq"
)

// A message alone goes to apply as a set of one; one applied before is
// acked after seen, any other error is returned as it is.
func TestApplyOne(t *testing.T) {
	boom := errors.New("db down")
	for _, tc := range []struct {
		name     string
		applyErr error
		want     error
		seen     int
	}{
		{"applied", nil, nil, 0},
		{"applied before", fmt.Errorf("claim: %w", dedup.ErrSeen), nil, 1},
		{"failed", boom, boom, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []mq.Message
			seen := 0
			err := dedup.ApplyOne(t.Context(), mq.Message{ID: "m1"},
				func(_ context.Context, ms []mq.Message) error { got = ms; return tc.applyErr },
				func(_ context.Context, m mq.Message) {
					if m.ID != "m1" {
						t.Errorf("seen(%s), want m1", m.ID)
					}
					seen++
				})
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("ApplyOne = %v, want %v", err, tc.want)
			}
			if len(got) != 1 || got[0].ID != "m1" {
				t.Errorf("apply got %v, want the one message", got)
			}
			if seen != tc.seen {
				t.Errorf("seen called %d times, want %d", seen, tc.seen)
			}
		})
	}
}
