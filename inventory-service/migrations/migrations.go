// Package migrations embeds inventory-service's SQL schema. Each file is
// idempotent (CREATE TABLE IF NOT EXISTS) and applied in lexical order by
// pkg/db.Migrate at start.
package migrations

import "embed"

// FS holds every *.sql file of this directory.
//
//go:embed *.sql
var FS embed.FS
