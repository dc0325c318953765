package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// v2Box gives every run a fresh cgroup under the box's.
type v2Box struct {
	dir string
	run string
	cpu *os.File
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
	return &v2Box{dir: dir, run: filepath.Join(dir, "run")}, nil
}

// Prepare has nothing to do: the program is born in its run's cgroup.
func (b *v2Box) Prepare() error { return nil }

func (b *v2Box) Begin(l Limits) (files []*os.File, err error) {
	if err := os.Mkdir(b.run, 0o755); err != nil {
		return nil, fmt.Errorf("create run cgroup: %w", err)
	}
	defer func() {
		if err != nil {
			b.End()
		}
	}()
	if err := writeControl(b.run, "pids.max", strconv.FormatInt(l.Processes, 10)); err != nil {
		return nil, err
	}
	// The program's cpuset from its birth (its memory nodes: the parent's).
	if len(l.CPUs) > 0 {
		if err := writeControl(b.run, "cpuset.cpus", FormatCPUList(l.CPUs)); err != nil {
			return nil, err
		}
	}
	if l.Memory > 0 {
		if err := writeControl(b.run, "memory.max", strconv.FormatInt(max(l.Memory, MinRunMemory), 10)); err != nil {
			return nil, err
		}
		// No swap (the file is absent when the kernel has no swap accounting).
		if err := writeControl(b.run, "memory.swap.max", "0"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	if b.cpu, err = openControl(filepath.Join(b.run, "cpu.stat"), os.O_RDONLY); err != nil {
		return nil, fmt.Errorf("open cpu accounting: %w", err)
	}
	dir, err := os.Open(b.run)
	if err != nil {
		return nil, fmt.Errorf("open run cgroup: %w", err)
	}
	return []*os.File{dir}, nil
}

func (b *v2Box) CPUTime() (time.Duration, error) {
	data, err := readAt(b.cpu)
	if err != nil {
		return 0, fmt.Errorf("read cpu usage: %w", err)
	}
	us, err := statField(data, "usage_usec")
	return time.Duration(us) * time.Microsecond, err
}

func (b *v2Box) End() (u Usage, err error) {
	if b.cpu != nil {
		u.CPUTime, err = b.CPUTime()
		b.cpu.Close()
		b.cpu = nil
	}
	if err == nil {
		u.PeakMemory, err = readInt(filepath.Join(b.run, "memory.peak"))
	}
	if err == nil {
		u.OOMKills, err = readStatField(filepath.Join(b.run, "memory.events"), "oom_kill")
	}
	return u, errors.Join(err, removeTree(b.run))
}

func (b *v2Box) Remove() error { return removeTree(b.dir) }
