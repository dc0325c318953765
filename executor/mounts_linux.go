package executor

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// mountAttrs are restrictions of a mount, as mount_setattr(2)'s MOUNT_ATTR_* bits.
type mountAttrs uint64

const (
	readOnlyAttrs mountAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	writableAttrs mountAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV
	// deviceAttrs keep device nodes working.
	deviceAttrs mountAttrs = unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NOEXEC
)

// restrictions names each restriction in mountinfo, as mount_setattr's
// attribute and as mount(2)'s flag.
var restrictions = []struct {
	option string
	attr   mountAttrs
	flag   uintptr
}{
	{"ro", unix.MOUNT_ATTR_RDONLY, unix.MS_RDONLY},
	{"nosuid", unix.MOUNT_ATTR_NOSUID, unix.MS_NOSUID},
	{"nodev", unix.MOUNT_ATTR_NODEV, unix.MS_NODEV},
	{"noexec", unix.MOUNT_ATTR_NOEXEC, unix.MS_NOEXEC},
	{"nosymfollow", unix.MOUNT_ATTR_NOSYMFOLLOW, unix.MS_NOSYMFOLLOW},
}

// setTreeAttrs sets attrs on the mount at target and on every mount below
// it. A recursive bind copies the source's submounts, and a bind remount
// changes the top mount only: a tmpfs mounted below a shown directory would
// stay writable. mount_setattr (Linux 5.12) does the whole tree at once;
// older kernels get each mount of the tree remounted.
func setTreeAttrs(target string, attrs mountAttrs) error {
	err := unix.MountSetattr(unix.AT_FDCWD, target, unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW, &unix.MountAttr{Attr_set: uint64(attrs)})
	if errors.Is(err, unix.ENOSYS) {
		return remountTree(target, attrs)
	}
	if err != nil {
		return fmt.Errorf("restrict mounts at %s: %w", target, err)
	}
	return nil
}

// remountTree remounts the mount at target and each mount below it with
// attrs, keeping the restrictions each had: a bind remount sets them all
// anew. Of mounts stacked on one mount point it reaches the top one, the
// only one a path leads to.
func remountTree(target string, attrs mountAttrs) error {
	mounts, err := readMountinfo()
	if err != nil {
		return err
	}
	// Fail closed: a target that mountinfo does not show (a path that is
	// not the kernel's own spelling of it) would restrict nothing.
	if !slices.ContainsFunc(mounts, func(m mountEntry) bool { return m.point == target }) {
		return fmt.Errorf("restrict mounts at %s: not a mount point in mountinfo", target)
	}
	for _, m := range mounts {
		if !pathWithin(target, m.point) {
			continue
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT)
		for _, r := range restrictions {
			if attrs&r.attr != 0 || slices.Contains(m.options, r.option) {
				flags |= r.flag
			}
		}
		if err := unix.Mount("", m.point, "", flags, ""); err != nil {
			return fmt.Errorf("restrict mount %s: %w", m.point, err)
		}
	}
	return nil
}

// mountEntry is a line of mountinfo: where a mount is and its own options.
type mountEntry struct {
	point   string
	options []string
}

// readMountinfo lists the mounts of the calling thread's mount namespace.
func readMountinfo() ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	// mountinfo escapes space, tab, newline and backslash in paths as octal.
	unescape := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	var mounts []mountEntry
	for _, line := range strings.Split(string(data), "\n") {
		// id parent major:minor root point options ...
		if f := strings.Fields(line); len(f) > 5 {
			mounts = append(mounts, mountEntry{point: unescape.Replace(f[4]), options: strings.Split(f[5], ",")})
		}
	}
	return mounts, nil
}
