package isolate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"sandboxd/executor"
	"sandboxd/spec"
)

// Group idleness is checked at least this often near its limit, and at
// most this often: each check walks the processes of every run in /proc.
const (
	maxIdleCheck = 100 * time.Millisecond
	minIdleCheck = 5 * time.Millisecond
)

// errGroupIdle is the cause of a group ended for its idleness_time_limit.
var errGroupIdle = errors.New("the group was idle for its idleness_time_limit")

// groupRun is what the idleness watch may read of a run of a group.
type groupRun struct {
	*isolateRun
	mu sync.Mutex
	// done: isolate has exited; cpu is the run's CPU time, the last
	// figure read while it ran, then isolate's own.
	done   bool
	cpu    time.Duration
	end    time.Time
	result spec.RunResult
	err    error
}

// RunGroup runs the jobs of a group at once, one isolate --run per program,
// each in its box: the pipes are made on the host and handed to isolate as
// the descriptors of its program (--inherit-fds).
func (x *Executor) RunGroup(ctx context.Context, g *executor.Group) (spec.GroupResult, error) {
	boxes, unlock, err := executor.LockGroupBoxes(x.boxes, g.Members, func(b *box) *sync.Mutex { return &b.mu })
	if err != nil {
		return spec.GroupResult{}, err
	}
	defer unlock()
	ends, err := executor.GroupPipes(g.Pipes, len(boxes))
	if err != nil {
		return spec.GroupResult{}, err
	}
	defer executor.CloseGroupPipes(ends)
	groupCtx, endGroup := context.WithCancelCause(ctx)
	defer endGroup(nil)
	// Every program is found before any starts: one that cannot be started
	// is an error, with nothing to kill.
	runs := make([]*groupRun, len(boxes))
	for i, b := range boxes {
		r, err := x.prepare(groupCtx, b, g.Members[i].Job, ends[i])
		if err != nil {
			return spec.GroupResult{}, spec.Errorf(spec.CodeOf(err), "programs[%d]: %s", i, err.Error())
		}
		runs[i] = &groupRun{isolateRun: r}
	}
	var wg sync.WaitGroup
	for i, r := range runs {
		if err := r.cmd.Start(); err != nil {
			endGroup(err)
			wg.Wait()
			if ctx.Err() != nil {
				return spec.GroupResult{}, spec.Ended(ctx, "the group was killed")
			}
			return spec.GroupResult{}, spec.Errorf(spec.CodeInternal, "programs[%d]: start isolate: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			runErr := r.cmd.Wait()
			end := time.Now()
			// A run still going when the group was found idle is ended for it,
			// even one that ended by itself before its kill landed.
			killedFor := spec.NoLimit
			if errors.Is(context.Cause(groupCtx), errGroupIdle) {
				killedFor = spec.LimitIdlenessTime
			}
			res, err := x.finish(r.isolateRun, runErr, killedFor)
			r.mu.Lock()
			r.done, r.end, r.result, r.err = true, end, res, err
			if err == nil {
				r.cpu = time.Duration(res.CPUTime * float64(time.Second))
			}
			r.mu.Unlock()
		}()
	}
	// Only the programs (and their isolates) hold the pipes now: a reader
	// sees the end of its input when its writers' isolates end.
	executor.CloseGroupPipes(ends)
	allDone := make(chan struct{})
	if g.IdlenessTime != nil {
		go func() {
			start := allStarted(runs, allDone)
			executor.WatchGroupIdleness(*g.IdlenessTime, func() time.Duration { return time.Since(start) },
				func() time.Duration { return groupCPU(runs) }, minIdleCheck, maxIdleCheck, allDone,
				func() { endGroup(errGroupIdle) }) // each isolate gets SIGTERM (cmd.Cancel)
		}()
	}
	wg.Wait()
	close(allDone)
	if ctx.Err() != nil {
		return spec.GroupResult{}, spec.Ended(ctx, "the group was killed")
	}
	res := spec.GroupResult{Results: make([]spec.RunResult, len(runs))}
	for i, r := range runs {
		if r.err != nil {
			return spec.GroupResult{}, spec.Errorf(spec.CodeOf(r.err), "programs[%d]: %s", i, r.err.Error())
		}
		res.Results[i] = r.result
		res.ExitOrder = append(res.ExitOrder, i)
	}
	// isolate reports no time of day: a program's end is its isolate's,
	// which follows it within the keeper's reaping of the box.
	sort.SliceStable(res.ExitOrder, func(i, j int) bool { return runs[res.ExitOrder[i]].end.Before(runs[res.ExitOrder[j]].end) })
	return res, nil
}

// allStarted waits until every program of a group has started (or its
// isolate has ended) and tells when: the group's real time runs from then,
// since isolate takes milliseconds to start each one, and two programs
// cannot wait on each other before both run. It looks every millisecond,
// so the start it tells is late by at most that, which can only delay a kill.
func allStarted(runs []*groupRun, allDone <-chan struct{}) time.Time {
	for {
		started := true
		for _, r := range runs {
			r.mu.Lock()
			started = started && (r.done || programPid(r.cmd.Process.Pid) > 0)
			r.mu.Unlock()
		}
		if started {
			return time.Now()
		}
		select {
		case <-allDone:
			return time.Now()
		case <-time.After(time.Millisecond):
		}
	}
}

// programPid is the pid of the program isolate runs (the child of its
// proxy, the box's init), or 0 before it has started: until the child has
// made its execve it is isolate still, setting up the program's process
// (isolate's own clock, which its real time is, starts before that).
func programPid(isolatePid int) int {
	proxy := children(isolatePid)
	if len(proxy) == 0 {
		return 0
	}
	program := children(proxy[0])
	if len(program) == 0 {
		return 0
	}
	isolateExe, err1 := os.Readlink("/proc/" + strconv.Itoa(isolatePid) + "/exe")
	exe, err2 := os.Readlink("/proc/" + strconv.Itoa(program[0]) + "/exe")
	if err1 != nil || err2 != nil || exe == isolateExe {
		return 0
	}
	return program[0]
}

// children are the child processes of a process, of each of its threads.
func children(pid int) []int {
	var pids []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		data, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(data)) {
			if child, err := strconv.Atoi(f); err == nil {
				pids = append(pids, child)
			}
		}
	}
	return pids
}

// groupCPU is the CPU time the runs of a group have used so far.
func groupCPU(runs []*groupRun) time.Duration {
	var sum time.Duration
	for _, r := range runs {
		r.mu.Lock()
		if !r.done {
			r.cpu = max(r.cpu, treeCPU(r.cmd.Process.Pid))
		}
		sum += r.cpu
		r.mu.Unlock()
	}
	return sum
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on
// every architecture Linux exports to user space).
const userHZ = 100

// treeCPU is the CPU time of the processes below isolate's (its proxy, the
// program and theirs): each one's own and that of the children it reaped.
// isolate's cgroups would say it more exactly, but where they are is
// isolate's configuration, which it does not tell (1.x); /proc works with
// and without --cg. A process that ends during the walk may be missed.
func treeCPU(isolatePid int) time.Duration {
	var ticks int64
	var walk func(pid int, self bool)
	walk = func(pid int, self bool) {
		if !self {
			ticks += procTicks(pid)
		}
		for _, child := range children(pid) {
			walk(child, false)
		}
	}
	walk(isolatePid, true)
	return time.Duration(ticks) * time.Second / userHZ
}

// procTicks is utime + stime + cutime + cstime of a process, from
// /proc/PID/stat (0 if it is gone).
func procTicks(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces: fields count from its end.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 15 {
		return 0
	}
	var ticks int64
	for _, f := range fields[11:15] { // utime stime cutime cstime: fields 14 to 17 of stat
		n, _ := strconv.ParseInt(f, 10, 64)
		ticks += n
	}
	return ticks
}
