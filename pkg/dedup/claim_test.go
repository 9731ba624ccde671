package dedup_test

import (
	"errors"
	"testing"

	"gorm.io/gorm"

	"seckill/pkg/dedup"
	"seckill/pkg/testenv"
)

// effect is a table standing for a handler's effect.
func setup(t *testing.T) *gorm.DB {
	t.Helper()
	gdb := testenv.MariaDB(t, dedup.Migrations)
	if err := gdb.Exec("CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(64))").Error; err != nil {
		t.Fatal(err)
	}
	return gdb
}

// apply is the handler shape: claim and effect in one transaction.
func apply(gdb *gorm.DB, consumer string, keys ...string) error {
	return gdb.Transaction(func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, consumer, keys...); err != nil {
			return err
		}
		return tx.Exec("INSERT INTO effects (note) VALUES (?)", keys[0]).Error
	})
}

func count(t *testing.T, gdb *gorm.DB, table string) int64 {
	t.Helper()
	var n int64
	if err := gdb.Table(table).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func TestClaim(t *testing.T) {
	t.Parallel()
	type call struct {
		consumer string
		keys     []string
		want     error
	}
	tests := []struct {
		name        string
		calls       []call
		wantEffects int64
		wantRecords int64
	}{
		{"same message twice", []call{
			{"payment", []string{"msg-1", "o1:created"}, nil},
			{"payment", []string{"msg-1", "o1:created"}, dedup.ErrSeen},
		}, 1, 2},
		{"business key again with a new message ID", []call{
			{"payment", []string{"msg-1", "o1:created"}, nil},
			{"payment", []string{"msg-2", "o1:created"}, dedup.ErrSeen},
		}, 1, 2},
		{"other consumers are independent", []call{
			{"payment", []string{"msg-1", "o1:created"}, nil},
			{"inventory", []string{"msg-1", "o1:created"}, nil},
		}, 2, 4},
		{"different events apply", []call{
			{"payment", []string{"msg-1", "o1:created"}, nil},
			{"payment", []string{"msg-2", "o1:closed"}, nil},
		}, 2, 4},
		{"duplicate keys in one call are one claim", []call{
			{"payment", []string{"o1:created", "o1:created"}, nil},
		}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			gdb := setup(t)
			for i, c := range tc.calls {
				err := apply(gdb, c.consumer, c.keys...)
				if !errors.Is(err, c.want) || (c.want == nil && err != nil) {
					t.Fatalf("call %d Claim(%s, %v) error = %v, want %v", i, c.consumer, c.keys, err, c.want)
				}
			}
			if got := count(t, gdb, "effects"); got != tc.wantEffects {
				t.Errorf("effects = %d, want %d", got, tc.wantEffects)
			}
			if got := count(t, gdb, "consumed_messages"); got != tc.wantRecords {
				t.Errorf("consumed_messages rows = %d, want %d", got, tc.wantRecords)
			}
		})
	}
}

func TestClaimRolledBackLeavesNoRecord(t *testing.T) {
	t.Parallel()
	gdb := setup(t)
	errEffect := errors.New("effect failed")
	err := gdb.Transaction(func(tx *gorm.DB) error {
		if err := dedup.Claim(tx, "payment", "msg-1", "o1:created"); err != nil {
			return err
		}
		return errEffect
	})
	if !errors.Is(err, errEffect) {
		t.Fatalf("transaction error = %v, want %v", err, errEffect)
	}
	if got := count(t, gdb, "consumed_messages"); got != 0 {
		t.Errorf("consumed_messages rows after rollback = %d, want 0", got)
	}
	// The redelivery then applies.
	if err := apply(gdb, "payment", "msg-1", "o1:created"); err != nil {
		t.Fatalf("redelivery after rollback: %v", err)
	}
	if got := count(t, gdb, "effects"); got != 1 {
		t.Errorf("effects = %d, want 1", got)
	}
}

func TestClaimNoKeys(t *testing.T) {
	t.Parallel()
	gdb := setup(t)
	if err := dedup.Claim(gdb, "payment", "", ""); err == nil {
		t.Errorf("Claim with no keys = nil, want error")
	}
}
