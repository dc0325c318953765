// Package executor runs programs in boxes. An Executor owns the boxes and
// their life; its backends are beneath: executor/native builds boxes from
// Linux namespaces and cgroups, executor/isolate drives an installed
// ioi/isolate. This package holds what they share: the box table, the state
// dir, PATH lookup and a run's environment.
package executor

import (
	"context"

	"sandboxd/spec"
)

// Executor is the set of box operations the protocol needs. Calls on
// different boxes may run in parallel; calls on one box are made one at a time.
type Executor interface {
	// OpenBox creates a box and returns its id.
	OpenBox(opts spec.BoxOptions) (int, error)
	// CloseBox kills whatever runs in the box and removes it.
	CloseBox(id int) error
	// ResetBox gives the box new, empty /space and /tmp; nothing of its
	// programs is left.
	ResetBox(id int) error
	// Box tells where the box's files are on the host.
	Box(id int) (spec.BoxInfo, error)
	// Run carries out a job (see NewJob) in the box and reports its verdict.
	// When ctx ends first, the run is killed and spec.Ended's error returned.
	Run(ctx context.Context, id int, job *Job) (spec.RunResult, error)
	// RunGroup carries out the jobs of a group at once, each in its box,
	// joined by pipes, and reports each one's verdict. When ctx ends first,
	// every run is killed and spec.Ended's error returned.
	RunGroup(ctx context.Context, g *Group) (spec.GroupResult, error)
	// Stats tells what the executor holds now.
	Stats() Stats
	// Close kills every run, removes every box and what the executor made on the host.
	Close() error
}

// Stats is what an executor tells of itself in the reply to stats.
type Stats struct {
	Backend   string // as --executor names it
	BoxesOpen int
	Cgroup    spec.CgroupInfo
	CPUs      *spec.CPUStats // nil: runs are not pinned
}

// StartOverMemory is the error of a program that could not be started
// because its run reached its memory limit first: the fork and the exec are
// charged to the run (a limit of a few pages). A run's verdict is then
// Result, MemoryLimitExceeded; a program of a run_group is Err, exec_failed.
type StartOverMemory struct {
	Result spec.RunResult
	Err    error
}

func (e *StartOverMemory) Error() string { return e.Err.Error() }
func (e *StartOverMemory) Unwrap() error { return e.Err }

// DefaultBox is the box that exists from the start.
const DefaultBox = 0

// MaxBoxes bounds the number of boxes open at once.
const MaxBoxes = 1000

// LowestFree is the lowest id in [from, to) that is not used, or -1.
func LowestFree(from, to int, used func(id int) bool) int {
	for i := from; i < to; i++ {
		if !used(i) {
			return i
		}
	}
	return -1
}
