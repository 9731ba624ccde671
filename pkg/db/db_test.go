package db_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"seckill/pkg/db"
	"seckill/pkg/testenv"
)

var migrations = fstest.MapFS{
	"0002_items.sql": {Data: []byte("-- second file: runs after 0001\nINSERT IGNORE INTO things (id, name) VALUES (1, 'first');\n")},
	"0001_things.sql": {Data: []byte(`-- things
CREATE TABLE IF NOT EXISTS things (
    id   BIGINT PRIMARY KEY,
    name VARCHAR(64) NOT NULL
);
CREATE TABLE IF NOT EXISTS others (id BIGINT PRIMARY KEY);
`)},
	"README.md": {Data: []byte("not a migration; CREATE TABLE boom")},
}

func TestOpenCreatesDatabaseAndMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	dsn := testenv.MariaDBDSN(t)
	// MariaDBDSN created the database; drop it so Open must create it.
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := db.Open(t.Context(), strings.Replace(dsn, "/"+cfg.DBName, "/", 1))
	if err != nil {
		t.Fatalf("Open(server): %v", err)
	}
	defer db.Close(admin)
	if err := admin.Exec("DROP DATABASE `" + cfg.DBName + "`").Error; err != nil {
		t.Fatal(err)
	}

	gdb, err := db.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open(%s) on a missing database: %v", cfg.DBName, err)
	}
	defer db.Close(gdb)
	for run := range 2 {
		if err := db.Migrate(t.Context(), gdb, migrations); err != nil {
			t.Fatalf("Migrate run %d: %v", run+1, err)
		}
	}
	var n int64
	if err := gdb.Table("things").Count(&n).Error; err != nil || n != 1 {
		t.Errorf("things rows = %d (%v), want 1", n, err)
	}
	// TranslateError: a duplicate key is gorm.ErrDuplicatedKey.
	err = gdb.Exec("INSERT INTO things (id, name) VALUES (1, 'again')").Error
	if !errors.Is(err, gorm.ErrDuplicatedKey) {
		t.Errorf("duplicate insert error = %v, want gorm.ErrDuplicatedKey", err)
	}
}

func TestMigrateReportsTheFailingFile(t *testing.T) {
	t.Parallel()
	gdb := testenv.MariaDB(t)
	bad := fstest.MapFS{"0001_bad.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS ok1 (id INT);\nCREATE TABLE broken (;\n")}}
	err := db.Migrate(t.Context(), gdb, bad)
	if err == nil || !strings.Contains(err.Error(), "0001_bad.sql statement 2") {
		t.Fatalf("Migrate(bad) error = %v, want one naming 0001_bad.sql statement 2", err)
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, dsn string }{
		{"unparsable", "root@tcp(127.0.0.1:3306"},
		{"nothing listening", "root@tcp(127.0.0.1:1)/x?timeout=1s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if gdb, err := db.Open(t.Context(), tc.dsn); err == nil {
				db.Close(gdb)
				t.Fatalf("Open(%q) = nil error, want error", tc.dsn)
			}
		})
	}
}

// Each file runs once per database: a file that alters a table would fail
// ("Duplicate column name") if a second start ran it again.
func TestMigrateRunsEachFileOnce(t *testing.T) {
	t.Parallel()
	gdb := testenv.MariaDB(t)
	ms := fstest.MapFS{
		"0001_t.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY);\n")},
		"0002_t.sql": {Data: []byte("ALTER TABLE t ADD COLUMN note VARCHAR(16) NOT NULL DEFAULT '';\n")},
	}
	for run := range 3 {
		if err := db.Migrate(t.Context(), gdb, ms); err != nil {
			t.Fatalf("Migrate run %d: %v", run+1, err)
		}
	}
	var applied []string
	if err := gdb.Table("schema_migrations").Order("name").Pluck("name", &applied).Error; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"0001_t.sql", "0002_t.sql"}, applied); diff != "" {
		t.Errorf("schema_migrations (-want +got):\n%s", diff)
	}
}
