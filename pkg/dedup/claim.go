// Package dedup makes message handlers idempotent, both ways the system needs:
// Claim records a message in the same database transaction as its effect, and
// Redis guards effects outside the database with a consuming/consumed record.
package dedup

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"gorm.io/gorm"

	"seckill/pkg/dedup/migrations"
)

// ErrSeen means the message (or its business key) was applied before.
var ErrSeen = errors.New("already consumed")

// ErrInProgress means another consumer holds the claim right now; retry later.
var ErrInProgress = errors.New("being consumed elsewhere")

// Migrations holds the consumed_messages table; run it with db.Migrate in
// every service that uses Claim.
var Migrations fs.FS = migrations.FS

// Claim inserts (consumer, key) for every key in one statement of the
// caller's transaction. If any key was claimed before it returns an error
// wrapping ErrSeen and the caller must roll back (returning the error from a
// gorm Transaction func does that); rolling back also releases the claims, so
// a failed effect leaves no record. Pass the broker message ID and the
// business key: a producer re-send gets a new message ID but the same key.
func Claim(tx *gorm.DB, consumer string, keys ...string) error {
	keys = slices.Compact(slices.Sorted(slices.Values(keys)))
	keys = slices.DeleteFunc(keys, func(k string) bool { return k == "" })
	if len(keys) == 0 {
		return fmt.Errorf("claim for %s: no keys", consumer)
	}
	var q strings.Builder
	q.WriteString("INSERT INTO consumed_messages (consumer, msg_key) VALUES ")
	args := make([]any, 0, 2*len(keys))
	for i, k := range keys {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?)")
		args = append(args, consumer, k)
	}
	err := tx.Exec(q.String(), args...).Error
	if errors.Is(err, gorm.ErrDuplicatedKey) {
		return fmt.Errorf("%s/%s: %w", consumer, strings.Join(keys, ","), ErrSeen)
	}
	if err != nil {
		return fmt.Errorf("claim %s/%s: %w", consumer, strings.Join(keys, ","), err)
	}
	return nil
}
