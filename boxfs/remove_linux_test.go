package boxfs

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// makeChain makes directories d/d/d/... depth deep under dir, with a file,
// and symlinks out of the chain and up it, on every level.
func makeChain(t *testing.T, dir string, depth int, outside string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < depth; i++ {
		f, err := unix.Openat(fd, "f", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(f)
		}
		for _, err := range []error{err, unix.Mkdirat(fd, "d", 0o755), unix.Symlinkat(outside, fd, "out"), unix.Symlinkat("..", fd, "up")} {
			if err != nil {
				t.Fatal(err)
			}
		}
		next, err := unix.Openat(fd, "d", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
}

// A tree far deeper than the open-files limit is removed, symlinks in it
// are removed and never followed, and what they point to stays.
func TestRemoveAllDeepTree(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	if err := os.MkdirAll(filepath.Join(outside, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "sub", "kept"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	makeChain(t, tree, 1000, outside)

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Enough for the test binary's own descriptors and a few more.
	low := old
	low.Cur = 64
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	err := RemoveAll(tree)
	unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	if err != nil {
		t.Fatalf("RemoveAll of a 1000-deep tree with 64 open files at most: %v", err)
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Errorf("the tree is still there: %v", err)
	}
	if data, err := os.ReadFile(filepath.Join(outside, "sub", "kept")); err != nil || string(data) != "kept" {
		t.Errorf("a file outside the tree, which symlinks in it pointed to: %q, %v", data, err)
	}
	if err := RemoveAll(tree); err != nil {
		t.Errorf("RemoveAll of a path that is gone: %v", err)
	}
}
