package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// v1Box holds the box's init in one group per hierarchy, and each run's
// memory in a group of its own, fresh under the box's memory group. The
// program's process, born in the box's group, joins the run's before it
// executes, writing "0" to its tasks file (a task that moves itself takes
// no lock that waits for an RCU grace period), so that all it allocates
// from its exec on is charged there; the kernel's objects of its fork (the
// task, its kernel stack: tens of KiB), the init's own memory and the pages that
// earlier runs left (files in /space and /tmp, page cache: charged to the
// groups of the runs that made them, which live on beneath the box's group
// once removed) never count in a run's figure nor limit. Charges do not move
// with a task (memory.move_charge_at_immigrate is 0). The group is made
// ahead of the run, off its path, while the run before it goes on
// (Prepare). Control files stay open: a run
// reads and writes them a dozen times, and opening each costs more than the
// access.
type v1Box struct {
	dirs []string // in the order of v1Controllers
	// run is the memory group of the current or last run, next the one
	// Prepare made for the run after it; runs counts the groups made,
	// naming each. Begin puts the last run's group in retired, which
	// Prepare moves to ended: the groups not yet removed.
	run, next *v1RunGroup
	retired   []*v1RunGroup
	ended     []*v1RunGroup
	runs      int
	// control files of the box's groups, by name; cpuCounter is
	// cpuacct.usage again, read-only, for the init
	cpuUsage, cpuCounter, pidsCurrent, pidsMax *os.File
}

// v1RunGroup is a run's memory group, with its control files; tasks is
// the one the program's process joins it by.
type v1RunGroup struct {
	dir                                           string
	maxUsage, memLimit, memswLimit, oomCtl, tasks *os.File
}

// pidsSlack is room in a v1 box's pids group for the init's threads.
const pidsSlack = 64

func newV1Box(bases []string, name string, initPid int) (b *v1Box, err error) {
	b = &v1Box{}
	defer func() {
		if err != nil {
			b.Remove()
		}
	}()
	for _, base := range bases {
		dir := filepath.Join(base, name)
		if err := removeTree(dir); err != nil {
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
	pids := b.dir("pids")
	for _, c := range []struct {
		f    **os.File
		path string
	}{
		{&b.cpuUsage, filepath.Join(b.dir("cpuacct"), "cpuacct.usage")},
		{&b.pidsCurrent, filepath.Join(pids, "pids.current")},
		{&b.pidsMax, filepath.Join(pids, "pids.max")},
	} {
		if *c.f, err = openControl(c.path, os.O_RDWR); err != nil {
			return nil, fmt.Errorf("open %s: %w", filepath.Base(c.path), err)
		}
	}
	if b.cpuCounter, err = openControl(b.cpuUsage.Name(), os.O_RDONLY); err != nil {
		return nil, fmt.Errorf("open cpuacct.usage: %w", err)
	}
	return b, nil
}

func (b *v1Box) dir(controller string) string { return b.dirs[slices.Index(v1Controllers, controller)] }

// Prepare makes the next run's memory group, and removes the groups of
// ended runs.
func (b *v1Box) Prepare() error {
	for _, g := range b.retired {
		g.closeFiles()
	}
	b.ended, b.retired = append(b.ended, b.retired...), nil
	if err := b.removeEnded(); err != nil {
		return err
	}
	if b.next != nil {
		return nil // not taken: a Begin failed before it took the group
	}
	b.runs++
	g, err := newV1RunGroup(filepath.Join(b.dir("memory"), fmt.Sprintf("run%d", b.runs)))
	if err != nil {
		return err
	}
	b.next = g
	return nil
}

// newV1RunGroup makes a run's memory group, with its control files open.
func newV1RunGroup(dir string) (_ *v1RunGroup, err error) {
	g := &v1RunGroup{dir: dir}
	if err := os.Mkdir(g.dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run cgroup: %w", err)
	}
	defer func() {
		if err != nil {
			g.remove()
		}
	}()
	err = openControls(dir, []controlFile{
		{f: &g.maxUsage, name: "memory.max_usage_in_bytes", flag: os.O_RDWR},
		{f: &g.memLimit, name: "memory.limit_in_bytes", flag: os.O_RDWR},
		{f: &g.memswLimit, name: "memory.memsw.limit_in_bytes", flag: os.O_RDWR, optional: true},
		{f: &g.oomCtl, name: "memory.oom_control", flag: os.O_RDWR},
		{f: &g.tasks, name: "tasks", flag: os.O_WRONLY},
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// removeEnded removes the groups of ended runs. No process of the run is
// left in one (the init reaps them all before the run ends), so none is
// killed here; a group the kernel still holds busy (EBUSY) is kept for a
// later try.
func (b *v1Box) removeEnded() error {
	kept := b.ended[:0]
	for _, g := range b.ended {
		switch err := unix.Rmdir(g.dir); {
		case errors.Is(err, unix.EBUSY):
			kept = append(kept, g)
		case err != nil && !errors.Is(err, unix.ENOENT):
			return fmt.Errorf("remove run cgroup %s: %w", g.dir, err)
		}
	}
	b.ended = kept
	return nil
}

func (g *v1RunGroup) closeFiles() {
	closeControls(&g.maxUsage, &g.memLimit, &g.memswLimit, &g.oomCtl, &g.tasks)
}

func (g *v1RunGroup) remove() error {
	if g == nil {
		return nil
	}
	g.closeFiles()
	return removeTree(g.dir)
}

func (b *v1Box) Begin(l Limits) ([]*os.File, error) {
	if b.next == nil {
		return nil, errors.New("no run cgroup was prepared")
	}
	if b.run != nil {
		b.retired = append(b.retired, b.run)
	}
	b.run, b.next = b.next, nil
	// The init's threads share the pids group with the program, and the Go
	// runtime starts threads when it likes; so the exact processes limit is
	// RLIMIT_NPROC on the box's own uid, and this group is a backstop the
	// program cannot fill, that never stops the init.
	initTasks, err := readIntAt(b.pidsCurrent)
	if err != nil {
		return nil, err
	}
	if err := writeAt(b.pidsMax, strconv.FormatInt(initTasks+l.Processes+pidsSlack, 10)); err != nil {
		return nil, err
	}
	if l.Memory > 0 {
		// Memory first: memory+swap may never be below it. The same
		// figure: no swap. The group is fresh, so no limit is lowered.
		limit := strconv.FormatInt(max(l.Memory, MinRunMemory), 10)
		for _, f := range []*os.File{b.run.memLimit, b.run.memswLimit} {
			if f == nil {
				continue
			}
			if err := writeAt(f, limit); err != nil {
				return nil, err
			}
		}
	}
	if err := writeAt(b.cpuUsage, "0"); err != nil {
		return nil, err
	}
	// Copies of the descriptors: opening a file again costs a path walk.
	var files []*os.File
	for _, f := range []*os.File{b.cpuCounter, b.run.tasks} {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			closeAll(files)
			return nil, fmt.Errorf("copy the %s descriptor: %w", filepath.Base(f.Name()), err)
		}
		files = append(files, os.NewFile(uintptr(fd), f.Name()))
	}
	return files, nil
}

func (b *v1Box) CPUTime() (time.Duration, error) {
	ns, err := readIntAt(b.cpuUsage)
	return time.Duration(ns), err
}

// End reads the run's figures; the Prepare after the next Begin closes and
// removes its group, off the run's path.
func (b *v1Box) End() (u Usage, err error) {
	if u.CPUTime, err = b.CPUTime(); err != nil {
		return u, err
	}
	if b.run == nil {
		return u, errors.New("no run began")
	}
	if u.PeakMemory, err = readIntAt(b.run.maxUsage); err != nil {
		return u, err
	}
	data, err := readAt(b.run.oomCtl)
	if err != nil {
		return u, fmt.Errorf("read memory.oom_control: %w", err)
	}
	u.OOMKills, err = statField(data, "oom_kill")
	return u, err
}

func (b *v1Box) Remove() error {
	for _, f := range []*os.File{b.cpuUsage, b.cpuCounter, b.pidsCurrent, b.pidsMax} {
		if f != nil {
			f.Close()
		}
	}
	var errs []error
	for _, g := range slices.Concat([]*v1RunGroup{b.run, b.next}, b.retired, b.ended) {
		errs = append(errs, g.remove())
	}
	b.run, b.next, b.retired, b.ended = nil, nil, nil, nil
	for _, dir := range b.dirs {
		errs = append(errs, removeTree(dir))
	}
	return errors.Join(errs...)
}
