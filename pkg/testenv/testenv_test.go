package testenv

import (
	"context"
	"strings"
	"testing"
)

func TestMariaDBIsFreshAndDropped(t *testing.T) {
	skipShort(t) // the inner test would skip and leave no name to check
	t.Parallel()
	var name string
	t.Run("inner", func(t *testing.T) {
		gdb := MariaDB(t)
		if err := gdb.Raw("SELECT DATABASE()").Scan(&name).Error; err != nil {
			t.Fatal(err)
		}
		var tables int64
		gdb.Raw("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?", name).Scan(&tables)
		if tables != 0 {
			t.Errorf("fresh database %s has %d tables", name, tables)
		}
	})
	if !strings.HasPrefix(name, "t_") {
		t.Fatalf("database name %q, want prefix t_", name)
	}
	probe := MariaDB(t)
	var n int64
	if err := probe.Raw("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?", name).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestRedisAndUnique(t *testing.T) {
	t.Parallel()
	rdb := Redis(t)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	a, b := Unique(t, "p_"), Unique(t, "p_")
	if a == b || !strings.HasPrefix(a, "p_") {
		t.Errorf("Unique() = %q, %q; want distinct with prefix p_", a, b)
	}
}
