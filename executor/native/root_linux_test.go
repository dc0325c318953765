package native

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"sandboxd/executor"
)

// inOwnNamespaces runs f on a thread with a mount namespace of its own, and
// the other namespaces flags name, which end with the thread: whatever f
// mounts or makes never reaches the host.
func inOwnNamespaces(t testing.TB, flags int, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNS | flags); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("make mounts private: %v", err)
			return
		}
		f()
	}()
	<-done
}

// Both ways of restricting a bound tree reach every mount below it, and
// keep what a mount already had (noexec); the source's mounts stay as they were.
func TestRestrictingATreeReachesEveryMountBelow(t *testing.T) {
	for _, c := range []struct {
		name     string
		restrict func(string, mountAttrs) error
	}{{"mount_setattr", setTreeAttrs}, {"remount each (kernels before 5.12)", remountTree}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
			inOwnNamespaces(t, 0, func() {
				for _, m := range []struct {
					dir   string
					flags uintptr
				}{{src, 0}, {filepath.Join(src, "sub"), unix.MS_NOEXEC}, {filepath.Join(src, "sub", "deep"), 0}} {
					if err := os.MkdirAll(m.dir, 0o755); err != nil {
						t.Error(err)
						return
					}
					if err := unix.Mount("tmpfs", m.dir, "tmpfs", m.flags, "size=1m"); err != nil {
						t.Errorf("mount %s: %v", m.dir, err)
						return
					}
				}
				if err := os.Mkdir(dst, 0o755); err != nil {
					t.Error(err)
					return
				}
				if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
					t.Errorf("bind: %v", err)
					return
				}
				if err := c.restrict(dst, readOnlyAttrs); err != nil {
					t.Error(err)
					return
				}
				if _, err := os.Create(filepath.Join(dst, "sub", "deep", "x")); !errors.Is(err, unix.EROFS) {
					t.Errorf("create below the restricted tree: %v, want EROFS", err)
				}
				mounts, err := executor.Mountinfo()
				if err != nil {
					t.Error(err)
					return
				}
				want := map[string][]string{
					dst: {"ro", "nosuid", "nodev"}, dst + "/sub": {"ro", "nosuid", "nodev", "noexec"}, dst + "/sub/deep": {"ro", "nosuid", "nodev"},
					src: {"rw"}, src + "/sub": {"rw", "noexec"}, src + "/sub/deep": {"rw"},
				}
				for _, m := range mounts {
					opts, ok := want[m.Point]
					if !ok {
						continue
					}
					delete(want, m.Point)
					for _, o := range opts {
						if !slices.Contains(m.Options, o) {
							t.Errorf("%s has options %v, want %s among them", m.Point, m.Options, o)
						}
					}
					if slices.Contains(opts, "rw") && slices.Contains(m.Options, "nosuid") {
						t.Errorf("the source's mount %s was changed: %v", m.Point, m.Options)
					}
				}
				for p := range want {
					t.Errorf("no mount at %s", p)
				}
			})
		})
	}
}

// The fallback finds mounts by the path mountinfo shows: a target named
// another way (through a symlink) is refused, never left unrestricted.
func TestRemountTreeFailsClosed(t *testing.T) {
	real, link := symlinkedDir(t)
	inOwnNamespaces(t, 0, func() {
		if err := unix.Mount("tmpfs", real, "tmpfs", 0, "size=1m"); err != nil {
			t.Errorf("mount: %v", err)
			return
		}
		if err := remountTree(link, readOnlyAttrs); err == nil {
			t.Errorf("remountTree through a symlink restricted nothing and said nothing")
		}
		if err := remountTree(filepath.Join(real, "not-a-mount"), readOnlyAttrs); err == nil {
			t.Errorf("remountTree of a path that is no mount point said nothing")
		}
	})
}

// symlinkedDir makes a directory and a symlink to it.
func symlinkedDir(t *testing.T) (real, link string) {
	t.Helper()
	dir := t.TempDir()
	real, link = filepath.Join(dir, "real"), filepath.Join(dir, "link")
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	return real, link
}
