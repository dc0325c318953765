package executor

import (
	"errors"
	"fmt"
	"slices"

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
	mounts, err := Mountinfo()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if !PathWithin(target, m.Point) {
			continue
		}
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT)
		for _, r := range restrictions {
			if attrs&r.attr != 0 || slices.Contains(m.Options, r.option) {
				flags |= r.flag
			}
		}
		if err := unix.Mount("", m.Point, "", flags, ""); err != nil {
			return fmt.Errorf("restrict mount %s: %w", m.Point, err)
		}
	}
	return nil
}
