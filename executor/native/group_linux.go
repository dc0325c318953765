package native

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"sandboxd/executor"
	"sandboxd/spec"
)

// groupIdle ends the runs of a group that used no CPU for its
// idleness_time_limit: each run still going at atNs (CLOCK_MONOTONIC) is
// IdlenessTimeLimitExceeded, even one that ends by itself before its kill
// lands (a reader that sees its killed writer's end, say).
type groupIdle struct{ atNs int64 }

func (*groupIdle) Error() string { return "the group was idle for its idleness_time_limit" }

// memberFailed ends a group one of whose programs could not start or be
// awaited: the others, whose pipes may lead nowhere now, are killed, and
// the group's answer is this error.
type memberFailed struct {
	index int
	err   error
}

func (e *memberFailed) Error() string { return fmt.Sprintf("programs[%d]: %s", e.index, e.err.Error()) }

// endedFor tells why ctx ended a run that ended at endNs (math.MaxInt64:
// still running): for the group's idleness if it still ran then, else
// errRunEnded (a close, a reset, a shutdown).
func endedFor(ctx context.Context, endNs int64) (spec.Limit, error) {
	var g *groupIdle
	if !errors.As(context.Cause(ctx), &g) {
		return spec.NoLimit, errRunEnded
	}
	if endNs >= g.atNs {
		return spec.LimitIdlenessTime, nil
	}
	return spec.NoLimit, nil
}

// RunGroup runs the jobs of a group at once, each in its box: the pipes are
// made on the host and handed to each box's init with the run request, and
// each run is awaited and decided as a run alone is.
func (n *Executor) RunGroup(ctx context.Context, g *executor.Group) (spec.GroupResult, error) {
	boxes, unlock, err := executor.LockGroupBoxes(n.boxes, g.Members, func(b *box) *sync.Mutex { return &b.mu })
	if err != nil {
		return spec.GroupResult{}, err
	}
	defer unlock()
	for _, b := range boxes {
		if b.closed {
			return spec.GroupResult{}, spec.Errorf(spec.CodeNoSuchBox, "box %d is closed", b.id)
		}
		if err := b.start(); err != nil {
			return spec.GroupResult{}, fmt.Errorf("restart box %d: %w", b.id, err)
		}
	}
	giveCPUs, err := takeGroupCPUs(ctx, boxes)
	if err != nil {
		return spec.GroupResult{}, err
	}
	defer giveCPUs()
	ends, err := executor.GroupPipes(g.Pipes, len(boxes))
	if err != nil {
		return spec.GroupResult{}, err
	}
	defer executor.CloseGroupPipes(ends)
	groupCtx, endGroup := context.WithCancelCause(ctx)
	defer endGroup(nil)
	runs := make([]*run, len(boxes))
	for i, b := range boxes {
		r, err := b.begin(g.Members[i].Job, ends[i])
		if err != nil {
			endGroup(err)
			for _, r := range runs[:i] {
				r.complete(groupCtx, nil)
			}
			return spec.GroupResult{}, spec.Errorf(spec.CodeOf(err), "programs[%d]: %s", i, err.Error())
		}
		runs[i] = r
	}
	// Only the programs hold the pipes now: a reader sees the end of its
	// input when its writers end.
	executor.CloseGroupPipes(ends)
	members := make([]groupMember, len(runs))
	var wg sync.WaitGroup
	for i, r := range runs {
		m := &members[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.result, m.err = r.complete(groupCtx, func() {
				m.mu.Lock()
				m.done = true
				m.mu.Unlock()
			})
			if m.err != nil {
				endGroup(&memberFailed{i, m.err})
			}
			m.mu.Lock()
			m.cpu = time.Duration(m.result.CPUTime * float64(time.Second))
			if r.startKnown { // not after an init lost to the OOM killer: startNs is the request's time then
				m.startNs = r.startNs
			}
			m.mu.Unlock()
		}()
	}
	allDone := make(chan struct{})
	if g.IdlenessTime != nil {
		go watchGroupIdleness(runs, members, *g.IdlenessTime, allDone, endGroup)
	}
	wg.Wait()
	close(allDone)
	if ctx.Err() != nil {
		return spec.GroupResult{}, spec.Ended(ctx, "the group was killed")
	}
	// The first failure, not the kills of the others that it caused.
	if failed, ok := context.Cause(groupCtx).(*memberFailed); ok {
		return spec.GroupResult{}, spec.Errorf(spec.CodeOf(failed.err), "%s", failed.Error())
	}
	res := spec.GroupResult{Results: make([]spec.RunResult, len(runs))}
	for i := range members {
		if err := members[i].err; err != nil {
			return spec.GroupResult{}, spec.Errorf(spec.CodeOf(err), "programs[%d]: %s", i, err.Error())
		}
		res.Results[i] = members[i].result
		res.ExitOrder = append(res.ExitOrder, i)
	}
	sort.SliceStable(res.ExitOrder, func(x, y int) bool { return runs[res.ExitOrder[x]].endNs < runs[res.ExitOrder[y]].endNs })
	return res, nil
}

// takeGroupCPUs gives each box of a group a CPU of its own for its run,
// when runs are pinned; the group gives them back (giveBack) when done.
func takeGroupCPUs(ctx context.Context, boxes []*box) (giveBack func(), err error) {
	pool := boxes[0].cpuPool
	if pool == nil {
		return func() {}, nil
	}
	if len(boxes) > pool.Size() {
		return nil, spec.Errorf(spec.CodeInvalidArgument, "run_group of %d programs needs %d CPUs at once, and --cpus gives %d: it can never run", len(boxes), len(boxes), pool.Size())
	}
	cpus, err := pool.Take(ctx, len(boxes))
	if err != nil {
		return nil, err
	}
	for i, b := range boxes {
		b.cpus = cpus[i : i+1]
	}
	return func() { pool.Give(cpus) }, nil
}

// groupMember is what the idleness watch may read of a run of a group.
type groupMember struct {
	mu sync.Mutex
	// done: the run's processes are gone and its accounting is being
	// closed (its box's init may be gone too); cpu is its CPU time from
	// then on (0 until it is known, which can only delay a kill), and
	// startNs when its program started (0 until it is known, or if it did
	// not start).
	done    bool
	cpu     time.Duration
	startNs int64
	result  spec.RunResult
	err     error
}

// started tells when the member's program started, 0 while that is not
// known: the init is asked only while the run goes on, until it tells.
func (m *groupMember) started(r *run) int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.startNs == 0 && !m.done {
		m.startNs, _, _ = r.b.whenStarted(r.b.runs)
	}
	return m.startNs
}

// watchGroupIdleness ends the group (groupIdle) when no program of it has
// used CPU for limit, and kills every run at once, not when its own watch
// next wakes.
func watchGroupIdleness(runs []*run, members []groupMember, limit float64, allDone <-chan struct{}, endGroup context.CancelCauseFunc) {
	// The group's time counts from its first program's start, which the
	// inits tell when asked (the runs' own watches learn theirs apart).
	elapsed := func() time.Duration {
		first := int64(0)
		for i, r := range runs {
			if s := members[i].started(r); s != 0 && (first == 0 || s < first) {
				first = s
			}
		}
		if first == 0 {
			return 0 // none started yet
		}
		return time.Duration(monotonicNs() - first)
	}
	cpu := func() time.Duration {
		var cpu time.Duration
		for i := range members {
			m := &members[i]
			m.mu.Lock()
			if m.done {
				cpu += m.cpu
			} else if used, err := runs[i].b.acct.CPUTime(); err == nil {
				cpu += used
			}
			m.mu.Unlock()
		}
		return cpu
	}
	executor.WatchGroupIdleness(limit, elapsed, cpu, minCheckInterval, maxCheckInterval, allDone, func() {
		endGroup(&groupIdle{atNs: monotonicNs()})
		for i, r := range runs {
			members[i].mu.Lock()
			if !members[i].done {
				r.b.kill.send(&initMessage{Op: opKill, Run: r.b.runs}, nil)
			}
			members[i].mu.Unlock()
		}
	})
}
