// Package cgroup limits and accounts the runs of boxes in the host's control
// groups: detection of the host's layout, and a driver for each of cgroup v1
// (a hierarchy per controller) and v2 (one unified hierarchy). It is Linux only.
package cgroup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mount is where the host mounts its cgroups.
const Mount = "/sys/fs/cgroup"

// v1Controllers are the cgroup v1 hierarchies a box is accounted in.
var v1Controllers = []string{"memory", "cpuacct", "pids"}

// Instance is the host's cgroup layout, detected at start: v2 (one unified
// hierarchy) or v1 (one hierarchy per controller), and the groups of this
// sandboxd instance, under which each box's accounting lives (Box).
type Instance struct {
	V2 bool
	// Placement is where the instance's group is on cgroup v2.
	Placement Placement
	// base holds one directory per hierarchy, owned by this sandboxd instance.
	base []string
	// cpus are the CPUs runs are pinned to (PlaceOptions.CPUs), nil for
	// none; cpusetBase is the instance's group in cgroup v1's cpuset hierarchy.
	cpus       []int
	cpusetBase string
}

// Detect reports which cgroup version the host mounts and whether the
// controllers sandboxd needs are there.
func Detect() (v2 bool, controllers []string, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(Mount, &st); err != nil {
		return false, nil, fmt.Errorf("statfs %s: %w", Mount, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		data, err := os.ReadFile(filepath.Join(Mount, "cgroup.controllers"))
		if err != nil {
			return true, nil, fmt.Errorf("read cgroup2 controllers: %w", err)
		}
		controllers = strings.Fields(string(data))
		for _, need := range []string{"memory", "pids"} {
			if !slices.Contains(controllers, need) {
				return true, controllers, fmt.Errorf("cgroup v2 controller %q is not available", need)
			}
		}
		return true, controllers, nil
	}
	for _, c := range v1Controllers {
		if err := unix.Statfs(filepath.Join(Mount, c), &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC {
			return false, controllers, fmt.Errorf("cgroup v1 hierarchy %q is not mounted at %s", c, filepath.Join(Mount, c))
		}
		controllers = append(controllers, c)
	}
	return false, controllers, nil
}

// NewInstance creates (after removing any stale copy) the groups of one
// sandboxd instance, named name, under which every run's group lives. On
// cgroup v2 they go beneath sandboxd's own cgroup (see PlaceV2), and
// sandboxd, with what else must move, moves into the leaf beside them.
func NewInstance(name string, opts PlaceOptions) (*Instance, error) {
	v2, _, err := Detect()
	if err != nil && !v2 {
		return nil, err
	}
	// On v2, placement tells what is missing, and where, in more words.
	cg := &Instance{V2: v2, cpus: opts.CPUs}
	if v2 {
		if cg.Placement, err = placeV2(opts); err != nil {
			return nil, err
		}
		cg.base = []string{filepath.Join(cg.Placement.Base, name)}
	} else {
		for _, c := range v1Controllers {
			cg.base = append(cg.base, filepath.Join(Mount, c, name))
		}
		// Left by a killed instance that pinned runs, whether this one does or not.
		if err := removeTree(filepath.Join(v1CpusetMount, name)); err != nil {
			return nil, fmt.Errorf("remove stale cgroup: %w", err)
		}
	}
	for _, dir := range cg.base {
		if err := removeTree(dir); err != nil {
			return nil, fmt.Errorf("remove stale cgroup: %w", err)
		}
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	err = nil
	switch {
	case v2 && len(cg.cpus) > 0:
		// The runs' own cgroups hold them to their CPUs, within these.
		err = writeControl(cg.base[0], "cpuset.cpus", FormatCPUList(cg.cpus))
	case len(cg.cpus) > 0:
		cg.cpusetBase, err = newV1Cpuset(name, opts.CPUs)
	}
	if err == nil && v2 {
		err = enableControllers(cg.base[0], len(cg.cpus) > 0)
	}
	if err != nil {
		cg.Remove()
		return nil, err
	}
	return cg, nil
}

// enableControllers gives the children of dir the controllers a run is
// limited by on cgroup v2, with cpuset when runs are pinned.
func enableControllers(dir string, pinned bool) error {
	needs := v2Needs
	if pinned {
		needs = v2PinnedNeeds
	}
	f := filepath.Join(dir, "cgroup.subtree_control")
	if err := os.WriteFile(f, []byte("+"+strings.Join(needs, " +")), 0); err != nil {
		return fmt.Errorf("enable the %s controllers in %s: %w", strings.Join(needs, " "), dir, err)
	}
	return nil
}

// Groups are the host directories of the instance's groups, one per
// hierarchy.
func (cg *Instance) Groups() []string {
	if cg.cpusetBase != "" {
		return append(slices.Clone(cg.base), cg.cpusetBase)
	}
	return cg.base
}

// Remove deletes the instance's groups; every run must have ended.
func (cg *Instance) Remove() error {
	var errs []error
	for _, dir := range cg.base {
		errs = append(errs, removeTree(dir))
	}
	if cg.cpusetBase != "" {
		errs = append(errs, removeTree(cg.cpusetBase))
	}
	return errors.Join(errs...)
}

// Limits are the limits a run's cgroup enforces.
type Limits struct {
	Memory    int64 // bytes, 0 for none
	Processes int64
	// CPUs are the CPUs the run is held to when runs are pinned; nil otherwise.
	CPUs []int
}

// Usage is what a run used, as its cgroup accounted it.
type Usage struct {
	CPUTime    time.Duration
	PeakMemory int64
	OOMKills   int64
}

// MinRunMemory is the least memory limit a run's group gets: the start of
// the program is charged there, before it executes (its exec; with less
// room the child could not even report a failed exec). Under a smaller
// memory_limit, a run that used more than the limit is MemoryLimitExceeded
// all the same (spec.Decide compares the peak with the limit).
const MinRunMemory = 128 << 10

// Box limits and measures the runs of one box.
//
// Moving a task into a cgroup can cost an RCU grace period, about a
// millisecond on many hosts, more than a whole run of a small program; so no
// other task is ever moved on a run's path. On cgroup v2 the program is born
// in a fresh cgroup of its own (clone3 with CLONE_INTO_CGROUP). Cgroup v1 has
// no such thing: the box's init lives in the box's groups, and each run's
// memory is accounted in a fresh group of its own, made ahead of the run
// (Prepare), which the program's process joins before it executes: a task
// that moves itself takes no lock that waits for a grace period. The CPU counter is the box's, and holds the init's work as
// well as the run's, so the init reads it around the run and takes out its
// own CPU time, which it knows exactly (getrusage): that figure replaces
// End's.
type Box interface {
	// Prepare readies the accounting of the next run: it makes the run's
	// cgroup (v2) or memory group (v1), and removes those of ended runs.
	// It may go on beside the current run, from its Begin until after its
	// End, and is done before the next Begin.
	Prepare() error
	// Begin prepares a run: its limits (a memory limit of at least
	// MinRunMemory). It returns the files the box's init needs for it, which
	// the caller closes: on v2 the cgroup directory the program must be born
	// in; on v1 the CPU counter, read-only, that the init shares with the
	// run, and the tasks file of the run's memory group, which the thread
	// that forks the program joins.
	Begin(l Limits) ([]*os.File, error)
	// CPUTime is the CPU time used by the run so far (on v1, with what the
	// init spent on it).
	CPUTime() (time.Duration, error)
	// End reports what the run used (CPU time included) and clears what Begin made; call it
	// after every Begin, once every process of the run is gone.
	End() (Usage, error)
	// Remove deletes the box's groups; its init must be gone.
	Remove() error
}

// NewBox creates the accounting of a box whose init has host pid initPid.
func (cg *Instance) NewBox(name string, initPid int) (Box, error) {
	if cg.V2 {
		b, err := newV2Box(filepath.Join(cg.base[0], name), len(cg.cpus) > 0)
		if err != nil {
			return nil, err // not a nil *v2Box in a Box
		}
		return b, nil
	}
	b, err := newV1Box(cg.base, name, initPid)
	if err != nil {
		return nil, err
	}
	if len(cg.cpus) == 0 {
		return b, nil
	}
	pb, err := newPinnedV1Box(b, cg.cpusetBase, name, initPid, cg.cpus)
	if err != nil {
		return nil, err
	}
	return pb, nil
}

// openControl opens a control file to keep open. Not with os.OpenFile: a
// cgroup file can be polled, so Go would put it in its poller non-blocking,
// and every Fd() of it (readAt) would set it blocking again: some six
// system calls more per file over its life, and a run opens five.
func openControl(path string, flag int) (*os.File, error) {
	for {
		fd, err := unix.Open(path, flag|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}

// controlFile is a control file of a group, to be opened into f; an
// optional one may be absent (the swap files, without swap accounting).
type controlFile struct {
	f        **os.File
	name     string
	flag     int
	optional bool
}

// openControls opens control files of the group at dir; on an error, those
// opened are the caller's to close (closeControls).
func openControls(dir string, files []controlFile) error {
	for _, c := range files {
		f, err := openControl(filepath.Join(dir, c.name), c.flag)
		switch {
		case c.optional && errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("open %s: %w", c.name, err)
		default:
			*c.f = f
		}
	}
	return nil
}

// closeControls closes the files that are open, and forgets them.
func closeControls(files ...**os.File) {
	for _, f := range files {
		if *f != nil {
			(*f).Close()
			*f = nil
		}
	}
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

// readAt reads a small control file kept open, from its start, in one
// system call: the kernel makes a control file's text whole at offset 0
// (os.File.ReadAt would read once more to see its end).
func readAt(f *os.File) ([]byte, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Pread(int(f.Fd()), buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
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

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// removeTree removes a cgroup and its descendants, killing any process
// still inside (left by a crashed instance). Missing directories are fine.
func removeTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read cgroup %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
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
		killProcs(dir)
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, lastErr)
}

func killProcs(dir string) {
	data, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, f := range strings.Fields(string(data)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}
