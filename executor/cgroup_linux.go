package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupMount = "/sys/fs/cgroup"

// v1Controllers are the cgroup v1 hierarchies a box is accounted in.
var v1Controllers = []string{"memory", "cpuacct", "pids"}

// Cgroups is the host's cgroup layout, detected at start: v2 (one unified
// hierarchy) or v1 (one hierarchy per controller), and the groups of this
// sandboxd instance, under which each box's accounting lives (boxAccounting).
type Cgroups struct {
	V2 bool
	// base holds one directory per hierarchy, owned by this sandboxd instance.
	base []string
}

// DetectCgroups reports which cgroup version the host mounts and whether the
// controllers sandboxd needs are there.
func DetectCgroups() (v2 bool, controllers []string, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupMount, &st); err != nil {
		return false, nil, fmt.Errorf("statfs %s: %w", cgroupMount, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		data, err := os.ReadFile(filepath.Join(cgroupMount, "cgroup.controllers"))
		if err != nil {
			return true, nil, fmt.Errorf("read cgroup2 controllers: %w", err)
		}
		controllers = strings.Fields(string(data))
		for _, need := range []string{"memory", "pids"} {
			if !contains(controllers, need) {
				return true, controllers, fmt.Errorf("cgroup v2 controller %q is not available", need)
			}
		}
		return true, controllers, nil
	}
	for _, c := range v1Controllers {
		if err := unix.Statfs(filepath.Join(cgroupMount, c), &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			return false, controllers, fmt.Errorf("cgroup v1 hierarchy %q is not mounted at %s", c, filepath.Join(cgroupMount, c))
		}
		controllers = append(controllers, c)
	}
	return false, controllers, nil
}

// NewCgroups creates (after removing any stale copy) the groups of one
// sandboxd instance, named name, under which every run's group lives.
func NewCgroups(name string) (*Cgroups, error) {
	v2, _, err := DetectCgroups()
	if err != nil {
		return nil, err
	}
	cg := &Cgroups{V2: v2}
	if v2 {
		if err := enableControllers(cgroupMount); err != nil {
			return nil, err
		}
		cg.base = []string{filepath.Join(cgroupMount, name)}
	} else {
		for _, c := range v1Controllers {
			cg.base = append(cg.base, filepath.Join(cgroupMount, c, name))
		}
	}
	for _, dir := range cg.base {
		if err := removeCgroupTree(dir); err != nil {
			return nil, fmt.Errorf("remove stale cgroup: %w", err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	if v2 {
		if err := enableControllers(cg.base[0]); err != nil {
			return nil, err
		}
	}
	return cg, nil
}

func enableControllers(dir string) error {
	f := filepath.Join(dir, "cgroup.subtree_control")
	if err := os.WriteFile(f, []byte("+memory +pids"), 0); err != nil {
		return fmt.Errorf("enable memory and pids controllers in %s: %w", dir, err)
	}
	return nil
}

// Remove deletes the instance's groups; every run must have ended.
func (cg *Cgroups) Remove() error {
	var errs []error
	for _, dir := range cg.base {
		errs = append(errs, removeCgroupTree(dir))
	}
	return errors.Join(errs...)
}

// runLimits are the limits a run's cgroup enforces.
type runLimits struct {
	memory    int64 // bytes, 0 for none
	processes int64
}

// runUsage is what a run used, as its cgroup accounted it.
type runUsage struct {
	cpuTime    time.Duration
	peakMemory int64
	oomKills   int64
}

// boxAccounting limits and measures the runs of one box.
//
// Moving a process into a cgroup (writing cgroup.procs) costs an RCU grace
// period, about a millisecond, more than a whole run of a small program; so
// no process is moved per run. On cgroup v2 the program is born in a fresh
// cgroup of its own (clone3 with CLONE_INTO_CGROUP). Cgroup v1 has no such
// thing, so the box's init lives in the box's groups and the program is born
// there; each run resets the counters, and memory is measured and limited
// above what the box held when the run began (files in /space, the init).
type boxAccounting interface {
	// Begin prepares a run. It returns the cgroup directory the program must
	// be born in, or nil when the init's own cgroups already hold it.
	Begin(l runLimits) (*os.File, error)
	// CPUTime is the CPU time used by the run so far.
	CPUTime() (time.Duration, error)
	// End reports what the run used (CPU time included) and clears what Begin made; call it
	// after every Begin, once every process of the run is gone.
	End() (runUsage, error)
	// Remove deletes the box's groups; its init must be gone.
	Remove() error
}

// NewBox creates the accounting of a box whose init has host pid initPid.
func (cg *Cgroups) NewBox(name string, initPid int) (boxAccounting, error) {
	if cg.V2 {
		return newV2Box(filepath.Join(cg.base[0], name))
	}
	return newV1Box(cg.base, name, initPid)
}

// v2Box gives every run a fresh cgroup under the box's.
type v2Box struct {
	dir string
	run string
	cpu *os.File
}

func newV2Box(dir string) (*v2Box, error) {
	if err := removeCgroupTree(dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create box cgroup: %w", err)
	}
	if err := enableControllers(dir); err != nil {
		return nil, err
	}
	return &v2Box{dir: dir, run: filepath.Join(dir, "run")}, nil
}

func (b *v2Box) Begin(l runLimits) (dir *os.File, err error) {
	if err := os.Mkdir(b.run, 0o755); err != nil {
		return nil, fmt.Errorf("create run cgroup: %w", err)
	}
	defer func() {
		if err != nil {
			b.End()
		}
	}()
	if err := writeControl(b.run, "pids.max", strconv.FormatInt(l.processes, 10)); err != nil {
		return nil, err
	}
	if l.memory > 0 {
		if err := writeControl(b.run, "memory.max", strconv.FormatInt(l.memory, 10)); err != nil {
			return nil, err
		}
		// No swap (the file is absent when the kernel has no swap accounting).
		if err := writeControl(b.run, "memory.swap.max", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if b.cpu, err = os.Open(filepath.Join(b.run, "cpu.stat")); err != nil {
		return nil, fmt.Errorf("open cpu accounting: %w", err)
	}
	if dir, err = os.Open(b.run); err != nil {
		return nil, fmt.Errorf("open run cgroup: %w", err)
	}
	return dir, nil
}

func (b *v2Box) CPUTime() (time.Duration, error) {
	data, err := readAt(b.cpu)
	if err != nil {
		return 0, fmt.Errorf("read cpu usage: %w", err)
	}
	us, err := statField(data, "usage_usec")
	return time.Duration(us) * time.Microsecond, err
}

func (b *v2Box) End() (u runUsage, err error) {
	if b.cpu != nil {
		u.cpuTime, err = b.CPUTime()
		b.cpu.Close()
		b.cpu = nil
	}
	if err == nil {
		u.peakMemory, err = readInt(filepath.Join(b.run, "memory.peak"))
	}
	if err == nil {
		u.oomKills, err = readStatField(filepath.Join(b.run, "memory.events"), "oom_kill")
	}
	return u, errors.Join(err, removeCgroupTree(b.run))
}

func (b *v2Box) Remove() error { return removeCgroupTree(b.dir) }

// v1Box holds the box's init, and so every program it starts, in one group
// per hierarchy. Its control files stay open: a run reads and writes them a
// dozen times, and opening each costs more than the access.
type v1Box struct {
	dirs []string // in the order of v1Controllers
	// control files, by name
	cpuUsage, maxUsage, memLimit, memswLimit, oomControl, pidsCurrent, pidsMax, forceEmpty *os.File

	memLimitSet int64 // what memory.limit_in_bytes holds; -1 is no limit
	memBase     int64 // memory the box held when the run began
	memFloor    int64 // the least memBase seen: what the init alone holds
	oomBase     int64
}

// pidsSlack is room in a v1 box's pids group for the init's threads.
const pidsSlack = 64

func newV1Box(bases []string, name string, initPid int) (b *v1Box, err error) {
	b = &v1Box{memLimitSet: -1, memFloor: math.MaxInt64}
	defer func() {
		if err != nil {
			b.Remove()
		}
	}()
	for _, base := range bases {
		dir := filepath.Join(base, name)
		if err := removeCgroupTree(dir); err != nil {
			return nil, err
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create box cgroup: %w", err)
		}
		b.dirs = append(b.dirs, dir)
		if err := writeControl(dir, "cgroup.procs", strconv.Itoa(initPid)); err != nil {
			return nil, err
		}
	}
	mem, pids := b.dir("memory"), b.dir("pids")
	for _, c := range []struct {
		f    **os.File
		path string
	}{
		{&b.cpuUsage, filepath.Join(b.dir("cpuacct"), "cpuacct.usage")},
		{&b.maxUsage, filepath.Join(mem, "memory.max_usage_in_bytes")},
		{&b.memLimit, filepath.Join(mem, "memory.limit_in_bytes")},
		{&b.memswLimit, filepath.Join(mem, "memory.memsw.limit_in_bytes")},
		{&b.oomControl, filepath.Join(mem, "memory.oom_control")},
		{&b.pidsCurrent, filepath.Join(pids, "pids.current")},
		{&b.pidsMax, filepath.Join(pids, "pids.max")},
		{&b.forceEmpty, filepath.Join(mem, "memory.force_empty")},
	} {
		*c.f, err = os.OpenFile(c.path, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) && c.f == &b.memswLimit {
			err = nil // no swap accounting: nothing to cap
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", filepath.Base(c.path), err)
		}
	}
	return b, nil
}

func (b *v1Box) dir(controller string) string { return b.dirs[indexOf(v1Controllers, controller)] }

func (b *v1Box) Begin(l runLimits) (*os.File, error) {
	// The init's threads share the pids group with the program, and the Go
	// runtime starts threads when it likes; so the exact processes limit is
	// RLIMIT_NPROC on the box's own uid, and this group is a backstop the
	// program cannot fill, that never stops the init.
	initTasks, err := readIntAt(b.pidsCurrent)
	if err != nil {
		return nil, err
	}
	if err := writeAt(b.pidsMax, strconv.FormatInt(initTasks+l.processes+pidsSlack, 10)); err != nil {
		return nil, err
	}
	if err := b.measureBase(); err != nil {
		return nil, err
	}
	// Page cache that earlier runs left in the box (a compiler's files, say)
	// would be reclaimed under this run's pressure and so widen its memory
	// limit by as much: when the box holds more than the init, reclaim first.
	// (Files of earlier runs in /space and /tmp cannot be reclaimed; they stay
	// in the base.)
	if b.memBase > b.memFloor+reclaimThreshold {
		if err := writeAt(b.forceEmpty, "0"); err != nil {
			return nil, err
		}
		if err := b.measureBase(); err != nil {
			return nil, err
		}
	}
	limit := int64(-1)
	if l.memory > 0 {
		limit = b.memBase + l.memory
	}
	if err := b.setMemoryLimit(limit); err != nil {
		return nil, err
	}
	data, err := readAt(b.oomControl)
	if err == nil {
		b.oomBase, err = statField(data, "oom_kill")
	}
	if err != nil {
		return nil, fmt.Errorf("read memory.oom_control: %w", err)
	}
	return nil, writeAt(b.cpuUsage, "0")
}

// reclaimThreshold is how much memory above the init's a box may hold at
// the start of a run before its page cache is reclaimed.
const reclaimThreshold = 4 << 20

// measureBase resets the peak to the usage now, which becomes the base.
func (b *v1Box) measureBase() (err error) {
	if err := writeAt(b.maxUsage, "0"); err != nil {
		return err
	}
	if b.memBase, err = readIntAt(b.maxUsage); err != nil {
		return err
	}
	b.memFloor = min(b.memFloor, b.memBase)
	return nil
}

// setMemoryLimit caps memory, and memory+swap at the same figure (no swap).
// memory+swap may never be below memory, so the order of the writes depends
// on whether the limit goes up or down.
func (b *v1Box) setMemoryLimit(limit int64) error {
	if limit == b.memLimitSet {
		return nil
	}
	raising := limit == -1 || (b.memLimitSet != -1 && limit > b.memLimitSet)
	files := []*os.File{b.memLimit, b.memswLimit}
	if raising {
		files = []*os.File{b.memswLimit, b.memLimit}
	}
	for _, f := range files {
		if f == nil {
			continue
		}
		if err := writeAt(f, strconv.FormatInt(limit, 10)); err != nil {
			return err
		}
	}
	b.memLimitSet = limit
	return nil
}

func (b *v1Box) CPUTime() (time.Duration, error) {
	ns, err := readIntAt(b.cpuUsage)
	return time.Duration(ns), err
}

func (b *v1Box) End() (u runUsage, err error) {
	if u.cpuTime, err = b.CPUTime(); err != nil {
		return u, err
	}
	peak, err := readIntAt(b.maxUsage)
	if err != nil {
		return u, err
	}
	data, err := readAt(b.oomControl)
	if err != nil {
		return u, fmt.Errorf("read memory.oom_control: %w", err)
	}
	ooms, err := statField(data, "oom_kill")
	u.peakMemory, u.oomKills = max(peak-b.memBase, 0), ooms-b.oomBase
	return u, err
}

func (b *v1Box) Remove() error {
	for _, f := range []*os.File{b.cpuUsage, b.maxUsage, b.memLimit, b.memswLimit, b.oomControl, b.pidsCurrent, b.pidsMax, b.forceEmpty} {
		if f != nil {
			f.Close()
		}
	}
	var errs []error
	for _, dir := range b.dirs {
		errs = append(errs, removeCgroupTree(dir))
	}
	return errors.Join(errs...)
}

// writeAt writes a value to a control file kept open.
func writeAt(f *os.File, value string) error {
	if _, err := f.WriteAt([]byte(value), 0); err != nil {
		return fmt.Errorf("set %s: %w", filepath.Base(f.Name()), err)
	}
	return nil
}

func readIntAt(f *os.File) (int64, error) {
	data, err := readAt(f)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Base(f.Name()), err)
	}
	return strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
}

func writeControl(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
		return fmt.Errorf("set %s: %w", file, err)
	}
	return nil
}

// readAt reads a small control file kept open, from its start.
func readAt(f *os.File) ([]byte, error) {
	buf := make([]byte, 1024)
	n, err := f.ReadAt(buf, 0)
	if n == 0 && err != nil {
		return nil, err
	}
	return buf[:n], nil
}

func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
}

func readStatField(path, key string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return statField(data, key)
}

// statField reads "key value" lines, as in cpu.stat and memory.events.
func statField(data []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %q in cgroup file", key)
}

// removeCgroupTree removes a cgroup and its descendants, killing any process
// still inside (left by a crashed instance). Missing directories are fine.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var lastErr error
	for attempt := 0; attempt < 200; attempt++ {
		lastErr = unix.Rmdir(dir)
		if lastErr == nil || errors.Is(lastErr, syscall.ENOENT) {
			return nil
		}
		if !errors.Is(lastErr, syscall.EBUSY) {
			break
		}
		killCgroupProcs(dir)
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, lastErr)
}

func killCgroupProcs(dir string) {
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

func contains(list []string, s string) bool { return indexOf(list, s) >= 0 }

func indexOf(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
