package executor

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDirsApartFromTheStateDir(t *testing.T) {
	base := t.TempDir()
	state := filepath.Join(base, "state")
	if err := os.MkdirAll(filepath.Join(state, "boxes"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(state, filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir   string
		apart bool
	}{
		{"/", false},
		{base, false},
		{state, false},
		{state + "/boxes", false},
		{state + "/boxes/7/not/yet", false},
		{base + "/alias", false},
		{base + "/alias/boxes", false},
		{state + "2", true},
		{base + "/other", true},
		{"/usr", true},
	} {
		err := checkDirsApart([]string{"/usr", c.dir}, state)
		if (err == nil) != c.apart {
			t.Errorf("dirs %s beside the state dir %s: %v, want apart=%v", c.dir, state, err, c.apart)
		}
	}
	// The state dir named through a symlink is where it leads.
	if err := checkDirsApart([]string{state + "/boxes"}, base+"/alias"); err == nil {
		t.Errorf("a dir inside the state dir, named through a symlink, was accepted")
	}
}

// A bind mount of a parent of the state dir reaches it by another path.
func TestDirsApartThroughABindMount(t *testing.T) {
	base := t.TempDir()
	state := filepath.Join(base, "state")
	alias := t.TempDir()
	if err := os.MkdirAll(filepath.Join(state, "boxes"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(base, alias, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(alias, unix.MNT_DETACH) })
	for _, d := range []string{alias, alias + "/state", alias + "/state/boxes"} {
		if err := checkDirsApart([]string{d}, state); err == nil {
			t.Errorf("dirs %s, a bind of (a parent of) the state dir %s, was accepted", d, state)
		}
	}
	if err := checkDirsApart([]string{t.TempDir()}, state); err != nil {
		t.Errorf("an unrelated dir was refused: %v", err)
	}
}
