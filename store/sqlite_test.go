package store

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/jmoiron/sqlx"

	"sandboxd/spec"
)

func open(t *testing.T, path string) *SQLite {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenCreatesParentsAndMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "sandboxd.db")
	s := open(t, path)
	var version, fk int
	var mode string
	for _, q := range []struct {
		dst   any
		query string
	}{{&version, "PRAGMA user_version"}, {&fk, "PRAGMA foreign_keys"}, {&mode, "PRAGMA journal_mode"}} {
		if err := s.db.Get(q.dst, q.query); err != nil {
			t.Fatal(err)
		}
	}
	if version != len(migrations) || fk != 1 || mode != "wal" {
		t.Errorf("user_version %d (want %d), foreign_keys %d (want 1), journal_mode %q (want wal)", version, len(migrations), fk, mode)
	}
	s.Close()
	open(t, path) // a second start applies nothing and works
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sandboxd.db")
	open(t, path).Close()
	db := sqlx.MustOpen("sqlite3", path)
	db.MustExec("PRAGMA user_version = 99")
	db.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("a database from a newer sandboxd opened without error")
	}
}

func TestPutGetListDelete(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "sandboxd.db"))
	env := map[string]string{"PATH": "/nix/store/x-tool/bin:/usr/bin", "Q": "a \"quoted\" $dollar\nnewline\tand 'single'"}
	put, err := s.Put(ctx, Runtime{Name: "py", NixShell: "{}", Environment: env}, false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "py")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != put.ID || got.NixShell != "{}" || !reflect.DeepEqual(got.Environment, env) || got.CreatedAt.IsZero() {
		t.Errorf("got %+v, want what was put: %+v", got, put)
	}

	_, err = s.Put(ctx, Runtime{Name: "py", NixShell: "other", Environment: map[string]string{}}, false)
	if spec.CodeOf(err) != spec.CodeRuntimeExists {
		t.Errorf("duplicate put: got %v, want runtime_exists", err)
	}
	if got, _ := s.Get(ctx, "py"); got.NixShell != "{}" {
		t.Errorf("a refused put changed the row: %+v", got)
	}

	replaced, err := s.Put(ctx, Runtime{Name: "py", NixShell: "new", Environment: map[string]string{"A": "1"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if replaced.ID != put.ID || replaced.NixShell != "new" || replaced.Environment["A"] != "1" || len(replaced.Environment) != 1 {
		t.Errorf("replace: got %+v, want id %d with the new values", replaced, put.ID)
	}
	if _, err := s.Put(ctx, Runtime{Name: "go", NixShell: "g"}, false); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "py" || list[1].Name != "go" {
		t.Errorf("list: got %+v, want py then go", list)
	}

	if err := s.Delete(ctx, "py"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "py"); spec.CodeOf(err) != spec.CodeNoSuchRuntime {
		t.Errorf("get after delete: got %v, want no_such_runtime", err)
	}
	if err := s.Delete(ctx, "py"); spec.CodeOf(err) != spec.CodeNoSuchRuntime {
		t.Errorf("second delete: got %v, want no_such_runtime", err)
	}
}

func TestEnvironmentMustBeAnObject(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "sandboxd.db"))
	if _, err := s.db.Exec("INSERT INTO runtime (name, nix_shell, environment, created_at) VALUES ('x', '', '[1]', '')"); err == nil {
		t.Error("the table accepted an environment that is not a JSON object")
	}
}
