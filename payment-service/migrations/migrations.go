// Package migrations holds payment-service's schema, applied in lexical order
// by pkg/db.Migrate at start and by tests through pkg/testenv.
package migrations

import "embed"

// FS is every *.sql file of this directory.
//
//go:embed *.sql
var FS embed.FS
