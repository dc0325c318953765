package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"sandboxd/executor"
	"sandboxd/spec"
)

// A host view (executor.HostView) is shown only while a run asks for it. It
// waits, bound when the box is built, below viewsDir, which the box user
// cannot enter, and is bound at its place for the run. (The bind's own mode
// is the host path's; only a parent directory that is not a mount point can
// keep the box user out.)
type hostView struct {
	hidden, target string
}

// viewsDir holds the waiting views: root's, mode 0700.
const viewsDir = "/.views"

// hostViews are the views of the box, each at its hidden place.
func hostViews(cfg *initConfig) []hostView {
	views := make([]hostView, len(cfg.Views))
	for i, v := range cfg.Views {
		views[i] = hostView{viewsDir + "/" + strconv.Itoa(i), v.Path}
	}
	return views
}

// requestedViews are the views a run asks for.
func requestedViews(cfg *initConfig, m *initMessage) ([]hostView, error) {
	all := hostViews(cfg)
	var views []hostView
	for _, p := range m.Views {
		i := slices.IndexFunc(all, func(v hostView) bool { return v.target == p })
		if i < 0 {
			return nil, fmt.Errorf("this host has no %s", p)
		}
		views = append(views, all[i])
	}
	return views, nil
}

// prepareView makes a view's target and binds its host path at its hidden place.
func prepareView(root string, v hostView, attrs mountAttrs) error {
	if err := os.MkdirAll(filepath.Join(root, v.target), 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", v.target, err)
	}
	if err := os.MkdirAll(filepath.Join(root, viewsDir), 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", viewsDir, err)
	}
	return bindMount(v.target, filepath.Join(root, v.hidden), attrs)
}

// buildRoot makes the box's file system in a fresh tmpfs and pivots into it.
func (in *boxInit) buildRoot() error {
	cfg := &in.cfg
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := cfg.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=1024,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	at := func(p string) string { return filepath.Join(root, p) }
	// First, while no shown directory can be in the way of its mount point.
	var err error
	if in.messageQueues, err = openMessageQueues(at("/.mqueue")); err != nil {
		return err
	}
	for _, d := range cfg.Dirs {
		if err := showHostPath(d, at(d)); err != nil {
			return err
		}
	}
	for _, b := range []struct{ host, box string }{{cfg.Space, spec.SpaceDir}, {cfg.Tmp, "/tmp"}} {
		if err := bindMount(b.host, at(b.box), writableAttrs); err != nil {
			return err
		}
	}
	if err := buildDev(at("/dev")); err != nil {
		return err
	}
	if err := os.Mkdir(at("/proc"), 0o555); err != nil {
		return fmt.Errorf("mkdir /proc: %w", err)
	}
	if err := unix.Mount("proc", at("/proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for i, v := range hostViews(cfg) {
		attrs := readOnlyAttrs
		if cfg.Views[i].Writable {
			attrs = writableAttrs
		}
		if err := prepareView(root, v, attrs); err != nil {
			return err
		}
	}
	if err := pivotInto(root); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	if in.lastPID, err = unix.Open("/proc/sys/kernel/ns_last_pid", unix.O_RDWR|unix.O_CLOEXEC, 0); err != nil {
		return fmt.Errorf("open ns_last_pid: %w", err)
	}
	// For startPIDsOver's barrier; a kernel without it leaves the barrier out.
	unix.Syscall(unix.SYS_MEMBARRIER, membarrierRegisterPrivateExpedited, 0, 0)
	return os.Chdir(spec.SpaceDir)
}

// showHostPath makes host path p visible read-only at target: a directory by
// a bind mount, a symlink (such as /bin on merged-/usr systems) as a symlink.
func showHostPath(p, target string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", filepath.Dir(target), err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		link, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", p, err)
		}
		return os.Symlink(link, target)
	}
	return bindMount(p, target, readOnlyAttrs)
}

// bindMount binds source (a directory or a file) at target, creating target,
// with the mounts below source, then restricts every one of them with attrs.
func bindMount(source, target string, attrs mountAttrs) error {
	fi, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("stat %s: %w", source, err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", source, err)
	}
	return setTreeAttrs(target, attrs)
}

// devices are the host device nodes a box shows in its /dev. Programs run
// in a session of their own, without a controlling terminal: opening tty
// fails with ENXIO, as on a host, rather than with ENOENT.
var devices = []string{"null", "zero", "full", "random", "urandom", "tty"}

// ptsOptions make the box's own devpts instance: its ptys are the box's
// alone, and a pty slave belongs to the box user who opened the master
// (mode 0620, as on a host). max bounds the ptys of a box at once: new
// instances share the kernel's pool (kernel.pty.max, less the host's
// reserve) with every other box.
const ptsOptions = "newinstance,ptmxmode=0666,mode=0620,max=64"

func buildDev(dev string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return fmt.Errorf("mkdir /dev: %w", err)
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		if err := bindMount("/dev/"+d, filepath.Join(dev, d), deviceAttrs); err != nil {
			return err
		}
	}
	pts := filepath.Join(dev, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return fmt.Errorf("mkdir /dev/pts: %w", err)
	}
	if err := unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOptions); err != nil {
		return fmt.Errorf("mount /dev/pts: %w", err)
	}
	// shm: POSIX shared memory and named semaphores (Python's
	// multiprocessing locks, say) live in the box's own /tmp.
	// In a fixed order: inode numbers are the same in every box.
	links := []struct{ name, target string }{{"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"}, {"stdout", "/proc/self/fd/1"},
		{"stderr", "/proc/self/fd/2"}, {"shm", "/tmp"}, {"ptmx", "pts/ptmx"}}
	for _, l := range links {
		if err := os.Symlink(l.target, filepath.Join(dev, l.name)); err != nil {
			return fmt.Errorf("link /dev/%s: %w", l.name, err)
		}
	}
	return unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

func pivotInto(root string) error {
	if err := os.Chdir(root); err != nil {
		return fmt.Errorf("chdir new root: %w", err)
	}
	if err := os.Mkdir(".old", 0o700); err != nil {
		return fmt.Errorf("mkdir .old: %w", err)
	}
	if err := unix.PivotRoot(".", ".old"); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	if err := os.Remove("/.old"); err != nil {
		return fmt.Errorf("remove old root: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	return nil
}

// showViews binds views at their places; on failure none stays shown.
func showViews(views []hostView) error {
	for i, v := range views {
		if err := unix.Mount(v.hidden, v.target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			hideViews(views[:i])
			return fmt.Errorf("show %s: %w", v.target, err)
		}
	}
	return nil
}

func hideViews(views []hostView) {
	for _, v := range views {
		unix.Unmount(v.target, unix.MNT_DETACH)
	}
}

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
	mounts, err := executor.Mountinfo()
	if err != nil {
		return err
	}
	// Fail closed: a target that mountinfo does not show (a path that is
	// not the kernel's own spelling of it) would restrict nothing.
	if !slices.ContainsFunc(mounts, func(m executor.Mount) bool { return m.Point == target }) {
		return fmt.Errorf("restrict mounts at %s: not a mount point in mountinfo", target)
	}
	for _, m := range mounts {
		if !executor.PathWithin(target, m.Point) {
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
