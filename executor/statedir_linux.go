package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"sandboxd/boxfs"
)

// A state dir belongs to one sandboxd instance at a time (a lock file in
// it); what a killed instance left in it is removed when the next one takes it.

// TakeStateDir creates the state directory with its boxes/ subdirectory and
// locks it for this instance; the lock lasts as long as the returned file.
//
// The path is resolved (symlinks included), as the kernel shows the mounts
// made below it: every comparison with mount points and shown directories
// needs the real path. boxes/ is root's alone: no box user has a reason to
// walk the host path to another box's files.
func TakeStateDir(dir string) (abs string, lock *os.File, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create state dir: %w", err)
	}
	if abs, err = filepath.Abs(dir); err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", nil, fmt.Errorf("resolve state dir: %w", err)
	}
	boxes := filepath.Join(abs, "boxes")
	if err := os.MkdirAll(boxes, 0o700); err != nil {
		return "", nil, fmt.Errorf("create state dir: %w", err)
	}
	if err := os.Chmod(boxes, 0o700); err != nil {
		return "", nil, fmt.Errorf("state dir: %w", err)
	}
	if lock, err = TryLock(filepath.Join(abs, "lock")); err != nil {
		return "", nil, fmt.Errorf("state dir %s is in use by another sandboxd: %w", abs, err)
	}
	return abs, lock, nil
}

// TryLock takes an exclusive lock on a file, without waiting, never
// through a symlink. The kernel drops it when the file is closed or the
// process dies.
func TryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// RemoveStaleBoxes unmounts and deletes box directories a killed instance left.
func RemoveStaleBoxes(boxesDir string) error {
	entries, err := os.ReadDir(boxesDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", boxesDir, err)
	}
	if len(entries) == 0 {
		// No entry, so no mount point below: the mountinfo, about a
		// millisecond of the start to read here, is not needed. A clean
		// exit and a new state dir leave boxes/ empty.
		return nil
	}
	all, err := Mountinfo()
	if err != nil {
		return err
	}
	var mounts []string
	for _, m := range all {
		if strings.HasPrefix(m.Point, boxesDir+"/") {
			mounts = append(mounts, m.Point)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts))) // children before parents
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount stale %s: %w", m, err)
		}
	}
	for _, e := range entries {
		if err := boxfs.RemoveAll(filepath.Join(boxesDir, e.Name())); err != nil {
			return fmt.Errorf("remove stale box: %w", err)
		}
	}
	return nil
}

// Mount is a line of mountinfo: where a mount is and its own options.
type Mount struct {
	Point   string
	Options []string
}

// Mountinfo lists the mounts of the calling thread's mount namespace.
func Mountinfo() ([]Mount, error) {
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	// mountinfo escapes space, tab, newline and backslash in paths as octal.
	unescape := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	var mounts []Mount
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root point options ...
		if f := strings.Fields(line); len(f) > 5 {
			mounts = append(mounts, Mount{Point: unescape.Replace(f[4]), Options: strings.Split(f[5], ",")})
		}
	}
	return mounts, nil
}
