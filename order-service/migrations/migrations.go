// Package migrations embeds order-service's SQL migrations for db.Migrate.
package migrations

import "embed"

// FS holds every *.sql file of this directory.
//
//go:embed *.sql
var FS embed.FS
