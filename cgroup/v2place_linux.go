package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LeafName names the leaf cgroup that holds processes beside sandboxd's
// groups on cgroup v2: sandboxd itself and, in a container, the processes
// that were in the container's root. A sandboxd started in a cgroup of this
// name (a judge that an earlier sandboxd moved, or one that systemd started
// with DelegateSubgroup=leaf) makes its groups beside it, in its parent.
const LeafName = "leaf"

// v2Needs are the controllers a box's runs are limited by on cgroup v2;
// v2PinnedNeeds, when runs are pinned to CPUs.
var (
	v2Needs       = []string{"memory", "pids"}
	v2PinnedNeeds = []string{"memory", "pids", "cpuset"}
)

// Placement is where sandboxd's groups go on cgroup v2, worked out from
// where sandboxd stands (/proc/self/cgroup), never above the cgroup it was
// given: Base holds the instance's groups, and no process unless it is the
// host's root cgroup (which the rule of no internal processes exempts).
type Placement struct {
	// Own is sandboxd's cgroup at start, as a path under the mount.
	Own string
	// Base is the cgroup whose children are the instance's groups.
	Base string
	// Root: Base is the host's root cgroup; nothing moves.
	Root bool
	// NamespaceRoot: Own is the root of sandboxd's cgroup namespace (a container).
	NamespaceRoot bool
	// Move are the processes to move into Base/leaf before the controllers
	// are enabled in Base: sandboxd and, in a container, the others.
	Move []int
	// Controllers are those Base offers its children.
	Controllers []string
}

// cpusetFile lists the CPUs that the instance's groups may have.
func (p Placement) cpusetFile() string { return filepath.Join(p.Base, "cpuset.cpus.effective") }

// Leaf is where sandboxd lives once placed.
func (p Placement) Leaf() string { return filepath.Join(p.Base, LeafName) }

// Describe says, for check, where the groups go and what moves.
func (p Placement) Describe(self int) string {
	where := "beneath " + p.Base
	switch {
	case p.Root:
		where = "at the root " + p.Base
	case p.Base != p.Own:
		where += " (beside sandboxd's cgroup " + p.Own + ")"
	}
	s := fmt.Sprintf("v2 %s, controllers: %s", where, strings.Join(p.Controllers, " "))
	others := slices.DeleteFunc(slices.Clone(p.Move), func(pid int) bool { return pid == self })
	switch {
	case len(others) > 0:
		s += fmt.Sprintf("; sandboxd moves the container's other processes (%s) and itself into %s", pidList(others), p.Leaf())
	case len(p.Move) > 0:
		s += "; sandboxd moves itself into " + p.Leaf()
	}
	return s
}

// PlaceOptions are what the operator decides about placement.
type PlaceOptions struct {
	// KeepOthers: never move a container's other processes; refuse instead.
	KeepOthers bool
	// CPUs, when set, are the CPUs runs are pinned to (--cpus), each run to
	// its own: a cpuset group holds it there (on v2, the cpuset controller
	// must be delegated too).
	CPUs []int
}

// PlaceV2 works out the placement on the cgroup2 hierarchy mounted at mount,
// for the process self whose /proc/self/cgroup and /proc/self/mountinfo are
// given. It reads the hierarchy and changes nothing.
func PlaceV2(mount string, procCgroup, mountinfo []byte, self int, opts PlaceOptions) (Placement, error) {
	rel, err := ownCgroup(procCgroup)
	if err != nil {
		return Placement{}, err
	}
	mountRoot, err := cgroup2MountRoot(mountinfo, mount)
	if err != nil {
		return Placement{}, err
	}
	// Both paths are relative to sandboxd's cgroup namespace; the mount
	// shows the hierarchy from mountRoot down.
	under, ok := strings.CutPrefix(rel, mountRoot)
	if mountRoot == "/" {
		under, ok = rel, true
	}
	if !ok || (under != "" && !strings.HasPrefix(under, "/")) {
		return Placement{}, fmt.Errorf("sandboxd's cgroup %s is not under the cgroup2 mount at %s, which shows %s: mount the hierarchy of sandboxd's cgroup namespace there (mount -t cgroup2 none %s)", rel, mount, mountRoot, mount)
	}
	p := Placement{Own: filepath.Join(mount, under)}
	p.Root = !exists(filepath.Join(p.Own, "cgroup.type")) // the root has no type
	p.NamespaceRoot = rel == "/" && !p.Root
	p.Base = p.Own
	procs, err := readPids(p.Own)
	if err != nil {
		return Placement{}, err
	}
	parent := filepath.Dir(p.Own)
	switch {
	case p.Root:
	case filepath.Base(p.Own) == LeafName && p.Own != mount && !exists(filepath.Join(parent, "cgroup.type")):
		// The leaf of the host's root: groups go at the root, as before.
		p.Base, p.Root = parent, true
	case filepath.Base(p.Own) == LeafName && p.Own != mount:
		parentProcs, err := readPids(parent)
		if err != nil {
			return Placement{}, err
		}
		if len(parentProcs) > 0 {
			return Placement{}, fmt.Errorf("sandboxd started in %s, whose parent holds processes (%s): a cgroup named %q is a leaf beside sandboxd's groups, so its parent must hold none; move them into %s",
				p.Own, pidList(parentProcs), LeafName, p.Own)
		}
		p.Base = parent
	default:
		others := slices.DeleteFunc(slices.Clone(procs), func(pid int) bool { return pid == self })
		switch {
		case slices.Contains(others, 0):
			return Placement{}, fmt.Errorf("sandboxd's cgroup %s holds processes of another PID namespace, which sandboxd cannot name or move: start sandboxd where they are not (or in %s)",
				p.Own, filepath.Join(p.Own, LeafName))
		case len(others) > 0 && !p.NamespaceRoot:
			return Placement{}, fmt.Errorf("sandboxd's cgroup %s holds other processes (%s): cgroup v2 lets a cgroup that holds processes enable no controller for its children, so sandboxd needs a cgroup the judge is not in. Start the judge in %s (under systemd: DelegateSubgroup=%s, or see sandboxd's README), and sandboxd makes its groups beside it",
				p.Own, pidList(others), filepath.Join(p.Own, LeafName), LeafName)
		case len(others) > 0 && opts.KeepOthers:
			return Placement{}, fmt.Errorf("the container's root cgroup %s holds other processes (%s) and --no-move-processes keeps sandboxd from moving them: move them into a leaf first, as container init scripts do (mkdir %[3]s; for p in $(cat %[1]s/cgroup.procs); do echo $p > %[3]s/cgroup.procs; done), or drop --no-move-processes",
				p.Own, pidList(others), filepath.Join(p.Own, LeafName))
		}
		p.Move = procs
	}
	if p.Controllers, err = readFields(filepath.Join(p.Base, "cgroup.controllers")); err != nil {
		return Placement{}, err
	}
	needs := v2Needs
	if len(opts.CPUs) > 0 {
		needs = v2PinnedNeeds
	}
	var missing []string
	for _, c := range needs {
		if !slices.Contains(p.Controllers, c) {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		where := "in " + filepath.Join(filepath.Dir(p.Base), "cgroup.subtree_control")
		if p.NamespaceRoot || p.Base == mount {
			where = "for the container's cgroup on the host (its parent's cgroup.subtree_control)"
		}
		return Placement{}, fmt.Errorf("cgroup v2 controllers %s are not delegated to %s (its cgroup.controllers: %q): enable them %s; under systemd, set Delegate=yes (or Delegate=%s) in the unit",
			strings.Join(missing, " "), p.Base, strings.Join(p.Controllers, " "), where, strings.Join(needs, " "))
	}
	return p, nil
}

// placeV2 places this process on the host's cgroup2 hierarchy: moves what
// must move into the leaf and enables the controllers in Base.
func placeV2(opts PlaceOptions) (Placement, error) {
	p, err := PlaceV2Here(opts)
	if err == nil && len(opts.CPUs) > 0 {
		err = checkHostCPUs(opts.CPUs, p.cpusetFile())
	}
	if err != nil {
		return p, err
	}
	if len(p.Move) > 0 {
		if err := os.Mkdir(p.Leaf(), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return p, fmt.Errorf("create leaf cgroup: %w", err)
		}
	}
	// A process in Base may fork between the listing and the move: list again.
	for attempt := 0; ; attempt++ {
		for _, pid := range p.Move {
			// Writing a pid moves the whole process, every thread of it.
			err := os.WriteFile(filepath.Join(p.Leaf(), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
			if err != nil && !errors.Is(err, syscall.ESRCH) {
				return p, fmt.Errorf("move process %d into %s: %w", pid, p.Leaf(), err)
			}
		}
		err := enableControllers(p.Base, len(opts.CPUs) > 0)
		if err == nil || !errors.Is(err, syscall.EBUSY) || p.Root || attempt == 10 {
			return p, err
		}
		if p.Move, err = readPids(p.Base); err != nil {
			return p, err
		}
		time.Sleep(time.Millisecond)
	}
}

// PlaceV2Here works out the placement of this process on the host's
// cgroup2 hierarchy.
func PlaceV2Here(opts PlaceOptions) (Placement, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(Mount, &st); err == nil && st.Flags&unix.ST_RDONLY != 0 {
		return Placement{}, fmt.Errorf("%s is mounted read-only: sandboxd needs a writable cgroupfs (a container: Docker or Podman --privileged, Kubernetes securityContext.privileged)", Mount)
	}
	procCgroup, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Placement{}, err
	}
	mountinfo, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return Placement{}, err
	}
	return PlaceV2(Mount, procCgroup, mountinfo, os.Getpid(), opts)
}

// ownCgroup reads the unified hierarchy's line ("0::/path") of /proc/self/cgroup.
func ownCgroup(procCgroup []byte) (string, error) {
	sc := bufio.NewScanner(strings.NewReader(string(procCgroup)))
	for sc.Scan() {
		if rel, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			if !strings.HasPrefix(rel, "/") || slices.Contains(strings.Split(rel, "/"), "..") {
				// "/.." when the process is outside its cgroup namespace's root.
				return "", fmt.Errorf("sandboxd's cgroup %q is outside its cgroup namespace", rel)
			}
			return path.Clean(rel), nil
		}
	}
	return "", fmt.Errorf("no cgroup v2 line (0::) in /proc/self/cgroup")
}

// cgroup2MountRoot reads, from mountinfo, the root of the cgroup2 mount at
// mount (the last one, should several be stacked there).
func cgroup2MountRoot(mountinfo []byte, mount string) (string, error) {
	root := ""
	sc := bufio.NewScanner(strings.NewReader(string(mountinfo)))
	for sc.Scan() {
		// id parent major:minor root mountpoint options... - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		f, fs := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(fs) < 1 || f[4] != mount {
			continue
		}
		if fs[0] == "cgroup2" {
			root = f[3]
		} else {
			root = ""
		}
	}
	if root == "" {
		return "", fmt.Errorf("no cgroup2 mount at %s in /proc/self/mountinfo", mount)
	}
	if strings.Contains(root, "..") {
		return "", fmt.Errorf("the cgroup2 mount at %s shows %s, outside sandboxd's cgroup namespace: mount it afresh inside the namespace (mount -t cgroup2 none %s)", mount, root, mount)
	}
	return path.Clean(root), nil
}

func readPids(dir string) ([]int, error) {
	fields, err := readFields(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range fields {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("read %s/cgroup.procs: %q is no pid", dir, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

func readFields(file string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return strings.Fields(string(data)), nil
}

func exists(file string) bool {
	_, err := os.Lstat(file)
	return err == nil
}

func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, pid := range pids {
		s[i] = strconv.Itoa(pid)
	}
	return "pids " + strings.Join(s, " ")
}
