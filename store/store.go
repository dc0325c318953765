// Package store keeps sandboxd's installed runtimes in an embedded SQLite
// database (sqlx over mattn/go-sqlite3). It returns errors and never logs.
package store

import (
	"context"
	"time"
)

// Runtime is one installed runtime: a shell.nix and the environment captured from it.
type Runtime struct {
	ID          int64
	Name        string
	NixShell    string
	Environment map[string]string
	CreatedAt   time.Time
}

// Store is what sandboxd needs of the runtime table. Errors for a missing or
// duplicate name carry the protocol codes no_such_runtime and runtime_exists.
type Store interface {
	// Put stores r in one transaction: a new row, or with replace the row of
	// the same name takes r's values (keeping its id). It returns the row stored.
	Put(ctx context.Context, r Runtime, replace bool) (Runtime, error)
	// Get returns the runtime called name.
	Get(ctx context.Context, name string) (Runtime, error)
	// List returns every runtime, by id.
	List(ctx context.Context) ([]Runtime, error)
	// Delete removes the runtime called name.
	Delete(ctx context.Context, name string) error
	Close() error
}
