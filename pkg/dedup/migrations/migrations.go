// Package migrations embeds pkg/dedup's SQL migrations for db.Migrate.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
