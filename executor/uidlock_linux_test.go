package executor

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Two holders in one process must conflict as two processes do: the
// executors of in-process tests, and the lock of each instance's own file.
func TestUIDRangesConflictWhenTheyOverlap(t *testing.T) {
	dir := t.TempDir()
	first, err := LockUIDs(dir, 60000, 1000, "/state/one")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ first, count int }{{60999, 1}, {59500, 501}, {60500, 1000}, {59000, 3000}} {
		_, err := LockUIDs(dir, c.first, c.count, "/state/two")
		if err == nil {
			t.Fatalf("uids %d+%d overlap 60000 to 60999, yet were taken", c.first, c.count)
		}
		msg := err.Error()
		want := fmt.Sprintf("uids %d to %d are in use: another sandboxd (pid %d, state dir /state/one) holds uids 60000 to 60999", c.first, c.first+c.count-1, os.Getpid())
		if !strings.HasPrefix(msg, want) || !strings.Contains(msg, "--uid-base") {
			t.Errorf("got %q, want it to begin %q and to name --uid-base", msg, want)
		}
	}
	for _, c := range []struct{ first, count int }{{59000, 1000}, {61000, 1000}} {
		l, err := LockUIDs(dir, c.first, c.count, "/state/three")
		if err != nil {
			t.Fatalf("uids %d+%d are apart from 60000 to 60999: %v", c.first, c.count, err)
		}
		defer l.Release()
	}
	first.Release()
	again, err := LockUIDs(dir, 60500, 400, "/state/four")
	if err != nil {
		t.Fatalf("released uids were not free again: %v", err)
	}
	again.Release()
}

// A holder file left by an instance that is gone names no one.
func TestUIDHolderOfADeadInstanceIsNotNamed(t *testing.T) {
	dir := t.TempDir()
	l, err := LockUIDs(dir, 70000, 10, "/state/live")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	// As a killed instance would leave it, with a pid no process has.
	if err := os.WriteFile(l.holder, []byte("pid 2147483647, state dir /state/dead\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = LockUIDs(dir, 70005, 10, "/state/other")
	if err == nil || strings.Contains(err.Error(), "/state/dead") || !strings.Contains(err.Error(), "another sandboxd holds uids 70000 to 70009") {
		t.Fatalf("got %v, want the range held, without the dead instance's state dir", err)
	}
}

// A lock dir that another user could have prepared is refused, and nothing
// it names is written: a symlink to elsewhere, a directory others may
// write in (where a holder file may be planted as a symlink), one owned by
// another user.
func TestUIDLockDirOfAnotherIsRefused(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	elsewhere := filepath.Join(base, "elsewhere")
	if err := os.MkdirAll(filepath.Join(elsewhere, "holders"), 0o700); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(base, "linked")
	if err := os.Symlink(elsewhere, linked); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	if err := os.MkdirAll(filepath.Join(open, "holders"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	cases := []string{linked, open}
	if os.Geteuid() == 0 {
		other := filepath.Join(base, "other")
		if err := os.MkdirAll(filepath.Join(other, "holders"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, other)
	}
	for _, dir := range cases {
		holder := filepath.Join(dir, "holders", rangeName(80000, 80999))
		if err := os.Symlink(victim, holder); err != nil {
			t.Fatal(err)
		}
		l, err := LockUIDs(dir, 80000, 1000, "/state/x")
		if err == nil {
			l.Release()
			t.Errorf("%s: taken", dir)
		} else if !strings.Contains(err.Error(), "uid lock dir") {
			t.Errorf("%s: got %v, want it to name the uid lock dir", dir, err)
		}
		if got, _ := os.ReadFile(victim); string(got) != "precious\n" {
			t.Fatalf("%s: the file its planted holder names now holds %q", dir, got)
		}
		os.Remove(holder)
	}
}

// Ranges out of the valid uids are refused, also where first+count wraps
// around (a --uid-base near the largest int passed as a range of negative end).
func TestUIDRangeOutOfBoundsIsRefused(t *testing.T) {
	for _, first := range []int{-1000, 0, 999, 1<<32 - 1000, 1 << 32, math.MaxInt - 500, math.MaxInt} {
		if err := CheckUIDRange(first, 1000); err == nil || !strings.Contains(err.Error(), "box uids must lie between") {
			t.Errorf("uids from %d: got %v, want refused as out of bounds", first, err)
		}
	}
	if err := CheckUIDRange(1<<32-1001, 1000); err != nil {
		t.Errorf("the highest range: %v", err)
	}
}

// A lock file planted as a symlink is never opened: root would lock (and
// create) whatever it names.
func TestTryLockNeverFollowsASymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.Symlink(target, filepath.Join(dir, "lock")); err != nil {
		t.Fatal(err)
	}
	if f, err := TryLock(filepath.Join(dir, "lock")); err == nil {
		f.Close()
		t.Fatal("TryLock opened a symlink")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("the symlink's target was created: %v", err)
	}
}
