package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	json "github.com/goccy/go-json"
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"

	"sandboxd/spec"
)

// migrations are applied in order, each once; PRAGMA user_version counts
// those applied. Append only: a released migration never changes.
var migrations = []string{
	// 1: the runtime table of the seed, with the environment as a JSON object.
	`CREATE TABLE runtime (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		name        TEXT    NOT NULL UNIQUE,
		nix_shell   TEXT    NOT NULL,
		environment TEXT    NOT NULL CHECK (json_valid(environment) AND json_type(environment) = 'object'),
		created_at  TEXT    NOT NULL
	)`,
}

// busyTimeout is how long a statement waits for another writer (another
// sandboxd on the same database) before it fails.
const busyTimeout = 5 * time.Second

// SQLite is the Store on an SQLite file.
type SQLite struct {
	db                             *sqlx.DB
	insert, upsert, get, list, del *sqlx.Stmt
}

var _ Store = (*SQLite)(nil)

// row is a runtime as the table holds it.
type row struct {
	ID          int64  `db:"id"`
	Name        string `db:"name"`
	NixShell    string `db:"nix_shell"`
	Environment string `db:"environment"`
	CreatedAt   string `db:"created_at"`
}

// Open opens (creating it and its parent directories if needed) the
// database at path and brings its schema up to date.
func Open(path string) (*SQLite, error) {
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open database %s: the path must not contain '?'", path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// Every connection of the pool gets these settings; _txlock=immediate
	// takes the write lock at BEGIN, so that two writers wait (busy timeout)
	// instead of failing on a lock upgrade.
	dsn := fmt.Sprintf("%s?_journal_mode=WAL&_foreign_keys=on&_busy_timeout=%d&_txlock=immediate", path, busyTimeout.Milliseconds())
	db, err := sqlx.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &SQLite{db: db}
	if err := s.init(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) init() error {
	var mode string
	if err := s.db.Get(&mode, "PRAGMA journal_mode"); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, not wal", mode)
	}
	if err := s.migrate(); err != nil {
		return err
	}
	const columns = "id, name, nix_shell, environment, created_at"
	for _, p := range []struct {
		stmt  **sqlx.Stmt
		query string
	}{
		{&s.insert, "INSERT INTO runtime (name, nix_shell, environment, created_at) VALUES (?, ?, ?, ?) RETURNING " + columns},
		{&s.upsert, `INSERT INTO runtime (name, nix_shell, environment, created_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET nix_shell = excluded.nix_shell, environment = excluded.environment, created_at = excluded.created_at
			RETURNING ` + columns},
		{&s.get, "SELECT " + columns + " FROM runtime WHERE name = ?"},
		{&s.list, "SELECT " + columns + " FROM runtime ORDER BY id"},
		{&s.del, "DELETE FROM runtime WHERE name = ?"},
	} {
		stmt, err := s.db.Preparex(p.query)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.query, err)
		}
		*p.stmt = stmt
	}
	return nil
}

// migrate applies the migrations the database has not seen, each in a
// transaction with its version number.
func (s *SQLite) migrate() error {
	var version int
	if err := s.db.Get(&version, "PRAGMA user_version"); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this sandboxd knows (%d)", version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		tx, err := s.db.Beginx()
		if err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		// PRAGMA takes no parameters; the version is our own integer.
		_, err = tx.Exec(migrations[v])
		if err == nil {
			_, err = tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1))
		}
		if err == nil {
			err = tx.Commit()
		} else {
			tx.Rollback()
		}
		if err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	return nil
}

// Put stores r in one transaction.
func (s *SQLite) Put(ctx context.Context, r Runtime, replace bool) (Runtime, error) {
	env, err := json.Marshal(r.Environment)
	if err != nil {
		return Runtime{}, fmt.Errorf("store runtime %q: %w", r.Name, err)
	}
	if r.Environment == nil {
		env = []byte("{}")
	}
	stmt := s.insert
	if replace {
		stmt = s.upsert
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return Runtime{}, fmt.Errorf("store runtime %q: %w", r.Name, err)
	}
	defer tx.Rollback()
	var out row
	created := time.Now().UTC().Format(time.RFC3339Nano)
	err = tx.StmtxContext(ctx, stmt).GetContext(ctx, &out, r.Name, r.NixShell, string(env), created)
	var sqlErr sqlite3.Error
	if errors.As(err, &sqlErr) && sqlErr.ExtendedCode == sqlite3.ErrConstraintUnique {
		return Runtime{}, spec.Errorf(spec.CodeRuntimeExists, "runtime %q is already installed (send \"replace\": true to replace it)", r.Name)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return Runtime{}, fmt.Errorf("store runtime %q: %w", r.Name, err)
	}
	return out.runtime()
}

// Get returns the runtime called name.
func (s *SQLite) Get(ctx context.Context, name string) (Runtime, error) {
	var r row
	err := s.get.GetContext(ctx, &r, name)
	if errors.Is(err, sql.ErrNoRows) {
		return Runtime{}, spec.Errorf(spec.CodeNoSuchRuntime, "no runtime %q is installed", name)
	}
	if err != nil {
		return Runtime{}, fmt.Errorf("get runtime %q: %w", name, err)
	}
	return r.runtime()
}

// List returns every runtime, by id.
func (s *SQLite) List(ctx context.Context) ([]Runtime, error) {
	var rows []row
	if err := s.list.SelectContext(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list runtimes: %w", err)
	}
	out := make([]Runtime, 0, len(rows))
	for _, r := range rows {
		rt, err := r.runtime()
		if err != nil {
			return nil, err
		}
		out = append(out, rt)
	}
	return out, nil
}

// Delete removes the runtime called name.
func (s *SQLite) Delete(ctx context.Context, name string) error {
	res, err := s.del.ExecContext(ctx, name)
	if err != nil {
		return fmt.Errorf("delete runtime %q: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete runtime %q: %w", name, err)
	} else if n == 0 {
		return spec.Errorf(spec.CodeNoSuchRuntime, "no runtime %q is installed", name)
	}
	return nil
}

// Close closes the statements and the database.
func (s *SQLite) Close() error {
	var errs []error
	for _, st := range []*sqlx.Stmt{s.insert, s.upsert, s.get, s.list, s.del} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

func (r row) runtime() (Runtime, error) {
	out := Runtime{ID: r.ID, Name: r.Name, NixShell: r.NixShell}
	if err := json.Unmarshal([]byte(r.Environment), &out.Environment); err != nil {
		return Runtime{}, fmt.Errorf("runtime %q: stored environment: %w", r.Name, err)
	}
	t, err := time.Parse(time.RFC3339Nano, r.CreatedAt)
	if err != nil {
		return Runtime{}, fmt.Errorf("runtime %q: stored created_at: %w", r.Name, err)
	}
	out.CreatedAt = t
	return out, nil
}
