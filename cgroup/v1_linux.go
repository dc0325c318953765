package cgroup

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

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

func (b *v1Box) dir(controller string) string { return b.dirs[slices.Index(v1Controllers, controller)] }

func (b *v1Box) Begin(l Limits) (*os.File, error) {
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
	if l.Memory > 0 {
		limit = b.memBase + l.Memory
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
	if err := writeAt(b.cpuUsage, "0"); err != nil {
		return nil, err
	}
	counter, err := os.Open(b.cpuUsage.Name())
	if err != nil {
		return nil, fmt.Errorf("open cpuacct.usage: %w", err)
	}
	return counter, nil
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

func (b *v1Box) End() (u Usage, err error) {
	if u.CPUTime, err = b.CPUTime(); err != nil {
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
	u.PeakMemory, u.OOMKills = max(peak-b.memBase, 0), ooms-b.oomBase
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
		errs = append(errs, removeTree(dir))
	}
	return errors.Join(errs...)
}
