package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// v2Box gives every run a fresh cgroup under the box's, which the program
// is born in. The cgroup is made, and its control files opened, ahead of
// the run, off its path, while the run before it goes on (Prepare); a run
// writes its limits through the open files and reads its figures through
// them, and its cgroup is removed by the Prepare after it.
type v2Box struct {
	dir    string
	pinned bool // cpuset is enabled: a run names its CPUs
	// run is the cgroup of the current or last run, next the one Prepare
	// made for the run after it; runs counts the cgroups made, naming each.
	// Begin puts the last run's cgroup in retired, which Prepare removes.
	run, next *v2RunGroup
	retired   []*v2RunGroup
	runs      int
}

// v2RunGroup is a run's cgroup, with its control files open; dirFD, the
// cgroup's directory, is handed to the init by Begin.
type v2RunGroup struct {
	dir                                  string
	dirFD                                *os.File
	pidsMax, memMax, swapMax, cpusetCPUs *os.File // written at Begin; swapMax nil without swap accounting, cpusetCPUs unless pinned
	cpuStat, memPeak, memEvents          *os.File // read during and after the run
}

func newV2Box(dir string, pinned bool) (*v2Box, error) {
	if err := removeTree(dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create box cgroup: %w", err)
	}
	if err := enableControllers(dir, pinned); err != nil {
		return nil, err
	}
	return &v2Box{dir: dir, pinned: pinned}, nil
}

// Prepare makes the next run's cgroup, and removes those of ended runs.
func (b *v2Box) Prepare() error {
	for len(b.retired) > 0 {
		if err := b.retired[0].remove(); err != nil {
			return err
		}
		b.retired = b.retired[1:]
	}
	if b.next != nil {
		return nil // not taken: a Begin failed before it took the group
	}
	b.runs++
	g, err := newV2RunGroup(filepath.Join(b.dir, fmt.Sprintf("run%d", b.runs)), b.pinned)
	if err != nil {
		return err
	}
	b.next = g
	return nil
}

func newV2RunGroup(dir string, pinned bool) (_ *v2RunGroup, err error) {
	g := &v2RunGroup{dir: dir}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create run cgroup: %w", err)
	}
	defer func() {
		if err != nil {
			g.remove()
		}
	}()
	if g.dirFD, err = os.Open(dir); err != nil {
		return nil, fmt.Errorf("open run cgroup: %w", err)
	}
	files := []controlFile{
		{f: &g.pidsMax, name: "pids.max", flag: os.O_WRONLY},
		{f: &g.memMax, name: "memory.max", flag: os.O_WRONLY},
		{f: &g.swapMax, name: "memory.swap.max", flag: os.O_WRONLY, optional: true},
		{f: &g.cpuStat, name: "cpu.stat", flag: os.O_RDONLY},
		{f: &g.memPeak, name: "memory.peak", flag: os.O_RDONLY},
		{f: &g.memEvents, name: "memory.events", flag: os.O_RDONLY},
	}
	if pinned {
		files = append(files, controlFile{f: &g.cpusetCPUs, name: "cpuset.cpus", flag: os.O_WRONLY})
	}
	if err = openControls(dir, files); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *v2RunGroup) closeFiles() {
	closeControls(&g.dirFD, &g.pidsMax, &g.memMax, &g.swapMax, &g.cpusetCPUs, &g.cpuStat, &g.memPeak, &g.memEvents)
}

func (g *v2RunGroup) remove() error {
	if g == nil {
		return nil
	}
	g.closeFiles()
	return removeTree(g.dir)
}

func (b *v2Box) Begin(l Limits) (files []*os.File, err error) {
	if b.next == nil {
		return nil, errors.New("no run cgroup was prepared")
	}
	if b.run != nil {
		b.retired = append(b.retired, b.run)
	}
	b.run, b.next = b.next, nil
	g := b.run
	if err := writeAt(g.pidsMax, strconv.FormatInt(l.Processes, 10)); err != nil {
		return nil, err
	}
	// The program's cpuset from its birth (its memory nodes: the parent's).
	if len(l.CPUs) > 0 {
		if g.cpusetCPUs == nil {
			return nil, errors.New("a run names CPUs in a box whose cgroup has no cpuset")
		}
		if err := writeAt(g.cpusetCPUs, FormatCPUList(l.CPUs)); err != nil {
			return nil, err
		}
	}
	if l.Memory > 0 {
		if err := writeAt(g.memMax, strconv.FormatInt(max(l.Memory, MinRunMemory), 10)); err != nil {
			return nil, err
		}
		if g.swapMax != nil { // no swap
			if err := writeAt(g.swapMax, "0"); err != nil {
				return nil, err
			}
		}
	}
	// The init takes the directory, and closes it once the program is born.
	dir := g.dirFD
	g.dirFD = nil
	return []*os.File{dir}, nil
}

func (b *v2Box) CPUTime() (time.Duration, error) {
	if b.run == nil {
		return 0, errors.New("no run began")
	}
	data, err := readAt(b.run.cpuStat)
	if err != nil {
		return 0, fmt.Errorf("read cpu usage: %w", err)
	}
	us, err := statField(data, "usage_usec")
	return time.Duration(us) * time.Microsecond, err
}

// End reads the run's figures; the Prepare after the next Begin closes and
// removes its cgroup, off the run's path.
func (b *v2Box) End() (u Usage, err error) {
	if u.CPUTime, err = b.CPUTime(); err != nil {
		return u, err
	}
	if u.PeakMemory, err = readIntAt(b.run.memPeak); err != nil {
		return u, err
	}
	data, err := readAt(b.run.memEvents)
	if err != nil {
		return u, fmt.Errorf("read memory.events: %w", err)
	}
	u.OOMKills, err = statField(data, "oom_kill")
	return u, err
}

func (b *v2Box) Remove() error {
	var errs []error
	for _, g := range append([]*v2RunGroup{b.run, b.next}, b.retired...) {
		errs = append(errs, g.remove())
	}
	b.run, b.next, b.retired = nil, nil, nil
	return errors.Join(append(errs, removeTree(b.dir))...)
}
