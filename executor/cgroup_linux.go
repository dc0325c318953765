package executor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const cgroupMount = "/sys/fs/cgroup"

// v1Controllers are the cgroup v1 hierarchies a run is accounted in.
var v1Controllers = []string{"memory", "cpuacct", "pids"}

// Cgroups is the host's cgroup layout, detected at start: v2 (one unified
// hierarchy) or v1 (one hierarchy per controller). Every run gets a fresh
// group so that its peak memory, CPU time and OOM count start from zero.
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

// runLimits are the limits a run's group enforces.
type runLimits struct {
	memory    int64 // bytes, 0 for none
	processes int64
}

// runGroup is the cgroup of one run: one directory per hierarchy.
type runGroup struct {
	v2    bool
	dirs  []string
	procs []*os.File // cgroup.procs of each directory, for the child to be placed in
	cpu   *os.File   // kept open: it is read many times while the run is watched
}

// NewRun creates the group of a run named name with the given limits.
func (cg *Cgroups) NewRun(name string, l runLimits) (g *runGroup, err error) {
	g = &runGroup{v2: cg.V2}
	defer func() {
		if err != nil {
			g.Remove()
		}
	}()
	for _, base := range cg.base {
		dir := filepath.Join(base, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			if !errors.Is(err, os.ErrExist) {
				return nil, fmt.Errorf("create run cgroup: %w", err)
			}
			// Left by a run whose cleanup failed: start from a fresh group.
			if err := removeCgroupTree(dir); err != nil {
				return nil, err
			}
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, fmt.Errorf("create run cgroup: %w", err)
			}
		}
		g.dirs = append(g.dirs, dir)
	}
	if err := g.setLimits(l); err != nil {
		return nil, err
	}
	for _, dir := range g.dirs {
		f, err := os.OpenFile(filepath.Join(dir, "cgroup.procs"), os.O_WRONLY, 0)
		if err != nil {
			return nil, fmt.Errorf("open run cgroup: %w", err)
		}
		g.procs = append(g.procs, f)
	}
	cpuFile := g.file("cpu.stat", "cpuacct", "cpuacct.usage")
	if g.cpu, err = os.Open(cpuFile); err != nil {
		return nil, fmt.Errorf("open cpu accounting: %w", err)
	}
	return g, nil
}

// file names a control file: name2 in cgroup v2, or name1 in the v1 hierarchy ctrl.
func (g *runGroup) file(name2, ctrl, name1 string) string {
	if g.v2 {
		return filepath.Join(g.dirs[0], name2)
	}
	return filepath.Join(g.dirs[indexOf(v1Controllers, ctrl)], name1)
}

func (g *runGroup) setLimits(l runLimits) error {
	write := func(path, value string, optional bool) error {
		err := os.WriteFile(path, []byte(value), 0)
		if err != nil && !(optional && errors.Is(err, os.ErrNotExist)) {
			return fmt.Errorf("set %s: %w", filepath.Base(path), err)
		}
		return nil
	}
	if err := write(g.file("pids.max", "pids", "pids.max"), strconv.FormatInt(l.processes, 10), false); err != nil {
		return err
	}
	if l.memory > 0 {
		mem := strconv.FormatInt(l.memory, 10)
		if err := write(g.file("memory.max", "memory", "memory.limit_in_bytes"), mem, false); err != nil {
			return err
		}
		// No swap: memory+swap is capped at the same figure (absent when swap accounting is off).
		if g.v2 {
			return write(g.file("memory.swap.max", "", ""), "0", true)
		}
		return write(g.file("", "memory", "memory.memsw.limit_in_bytes"), mem, true)
	}
	return nil
}

// procsFiles are the cgroup.procs files the run's main process is written into.
func (g *runGroup) procsFiles() []*os.File { return g.procs }

// CPUTime is the CPU time (user + system) used by every process of the run so far.
func (g *runGroup) CPUTime() (time.Duration, error) {
	var buf [512]byte
	n, err := g.cpu.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("read cpu usage: %w", err)
	}
	if !g.v2 {
		ns, err := strconv.ParseInt(string(bytes.TrimSpace(buf[:n])), 10, 64)
		return time.Duration(ns), err
	}
	us, err := statField(buf[:n], "usage_usec")
	return time.Duration(us) * time.Microsecond, err
}

// MemoryPeak is the peak memory use of the run, in bytes.
func (g *runGroup) MemoryPeak() (int64, error) {
	data, err := os.ReadFile(g.file("memory.peak", "memory", "memory.max_usage_in_bytes"))
	if err != nil {
		return 0, fmt.Errorf("read memory peak: %w", err)
	}
	return strconv.ParseInt(string(bytes.TrimSpace(data)), 10, 64)
}

// OOMKills counts the processes the kernel killed for the run's memory limit.
func (g *runGroup) OOMKills() (int64, error) {
	data, err := os.ReadFile(g.file("memory.events", "memory", "memory.oom_control"))
	if err != nil {
		return 0, fmt.Errorf("read oom events: %w", err)
	}
	return statField(data, "oom_kill")
}

// Remove closes the group's files and deletes its directories.
func (g *runGroup) Remove() error {
	for _, f := range g.procs {
		f.Close()
	}
	if g.cpu != nil {
		g.cpu.Close()
	}
	var errs []error
	for _, dir := range g.dirs {
		errs = append(errs, removeCgroupTree(dir))
	}
	return errors.Join(errs...)
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
