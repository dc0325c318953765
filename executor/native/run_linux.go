package native

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Check intervals of the limit watch: never sleep longer than the maximum, so
// that a stalled reading is retried and a shutdown is heard; never shorter
// than the minimum, so that the watch does not burn the CPU the program is
// measured on.
const (
	maxCheckInterval = 100 * time.Millisecond
	minCheckInterval = 250 * time.Microsecond
)

// run is one job in a box: begun (its accounting opened, the program
// started), awaited (its time limits enforced until it ends), then finished
// (its outcome decided) or aborted (the box is in doubt).
type run struct {
	b   *box
	job *executor.Job
	// startNs is when the program started (CLOCK_MONOTONIC, shared with the
	// init) once startKnown; until then, when the run was asked for, which
	// is earlier: the watch asks the init before it acts on a time limit.
	startNs    int64
	startKnown bool
	// initCPU is what the CPU counter holds of the init's own work on the
	// run (cgroup v1), which the limit watch leaves out: the init's work
	// until the program started, and more as checks find it.
	initCPU time.Duration
	// checkCPU: the counter also holds the init's work (cgroup v1), so the
	// CPU limit is enforced by the init, which measures the run exactly.
	checkCPU bool
	// accounting: the run's accounting is open, until end.
	accounting bool
	endNs      int64 // when the main process ended, once finished
}

func (b *box) run(ctx context.Context, job *executor.Job) (spec.RunResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return spec.RunResult{}, spec.Errorf(spec.CodeNoSuchBox, "box %d is closed", b.id)
	}
	// After a fault or a failed reset, the box starts again.
	if err := b.start(); err != nil {
		return spec.RunResult{}, fmt.Errorf("restart box %d: %w", b.id, err)
	}
	if b.cpuPool != nil {
		cpus, err := b.cpuPool.Take(ctx, 1)
		if err != nil {
			return spec.RunResult{}, err
		}
		defer b.cpuPool.Give(cpus)
		b.cpus = cpus
	}
	r, err := b.begin(job, nil)
	if err != nil {
		return spec.RunResult{}, err
	}
	res, err := r.complete(ctx, nil)
	var over *executor.StartOverMemory
	if errors.As(err, &over) {
		return over.Result, nil
	}
	return res, err
}

// reachedMemoryLimit tells whether a run's memory reached its limit, which
// the kernel holds in whole pages.
func reachedMemoryLimit(l spec.Limits, u cgroup.Usage) bool {
	if l.Memory == nil {
		return false
	}
	page := int64(os.Getpagesize())
	return u.OOMKills > 0 || u.PeakMemory >= *l.Memory/page*page
}

// complete awaits a begun run and finishes it; awaited, when set, is
// called in between, when the run's processes are gone. A program that
// could not start is an error (executor.StartOverMemory for want of
// memory).
func (r *run) complete(ctx context.Context, awaited func()) (spec.RunResult, error) {
	ended, killedFor, err := r.await(ctx)
	if awaited != nil {
		awaited()
	}
	switch {
	case errors.Is(err, errRunEnded):
		r.end()
		return spec.RunResult{}, spec.Ended(ctx, "the run was killed")
	case errors.Is(err, errInitGone):
		return r.finish(nil, killedFor, err)
	case err != nil:
		return spec.RunResult{}, r.abort(err)
	case ended.Op == opFailed:
		return spec.RunResult{}, r.notStarted(ended)
	}
	return r.finish(ended, killedFor, nil)
}

// begin opens the run's accounting and asks the init to start the program,
// with pipes (fd → pipe end) in place of its own files; whether it started
// is told when the run is awaited (complete).
func (b *box) begin(job *executor.Job, pipes map[int]*os.File) (*run, error) {
	rl := cgroup.Limits{Processes: *job.Limits.Processes, CPUs: b.cpus}
	if job.Limits.Memory != nil {
		rl.Memory = *job.Limits.Memory
	}
	if err := b.awaitNext(); err != nil {
		return nil, fmt.Errorf("box %d: %w", b.id, b.initFailed(err))
	}
	acctFiles, err := b.acct.Begin(rl)
	// The next run's accounting is made while this one goes on.
	b.prepareNext()
	if err != nil {
		return nil, fmt.Errorf("run in box %d: %w", b.id, err)
	}
	r := &run{b: b, job: job, accounting: true, checkCPU: !b.cgroups.V2, startNs: monotonicNs()}
	defer func() {
		for _, f := range acctFiles {
			f.Close()
		}
	}()
	files := slices.Clone(acctFiles)
	b.runs++
	msg := &initMessage{
		Op:      opRun,
		Run:     b.runs,
		Argv:    job.Argv,
		Env:     job.Env,
		Path:    job.Path,
		Stdin:   job.Stdio.Stdin,
		Stdout:  job.Stdio.Stdout,
		Stderr:  job.Stdio.Stderr,
		UID:     b.uid,
		GID:     b.uid,
		RLimits: rlimits(job),
	}
	for _, v := range job.Views {
		msg.Views = append(msg.Views, v.Path)
	}
	for fd, f := range pipes {
		msg.PipeFDs = append(msg.PipeFDs, fd)
		files = append(files, f)
	}
	if err := b.ctl.send(msg, files); errors.Is(err, errTooLargeForTheInit) {
		r.end()
		return nil, spec.Errorf(spec.CodeInvalidArgument, "argv and env of this run are too large to pass to the box: %v", err)
	} else if err != nil {
		return nil, r.abort(err)
	}
	return r, nil
}

// notStarted ends a run whose program the init could not start (failed)
// and tells why.
func (r *run) notStarted(failed *initMessage) error {
	usage, err := r.end()
	job := r.job
	// A failure to start for want of memory, not one of exec itself (no
	// such file, ...), whose memory is a tiny run's and may read as much as
	// a limit of a few pages.
	if err == nil && (!failed.ExecFailed || failed.ExecNoMemory) && reachedMemoryLimit(job.Limits, usage) {
		return &executor.StartOverMemory{
			Result: spec.Decide(job.Limits, spec.Outcome{KilledFor: spec.LimitMemory, Metrics: spec.Metrics{Memory: usage.PeakMemory}}),
			Err:    spec.Errorf(spec.CodeExecFailed, "%s could not be started within its memory_limit of %d bytes (its exec is charged to it): %s", spec.Quote(job.Argv[0]), *job.Limits.Memory, failed.Error),
		}
	}
	if failed.ExecFailed {
		return spec.Errorf(spec.CodeExecFailed, "%s", failed.Error)
	}
	return fmt.Errorf("box %d: %s", r.b.id, failed.Error)
}

// sofar is the run's CPU and real time so far, in seconds, by the CPU
// counter's reading used.
func (r *run) sofar(used time.Duration) (cpu, elapsed float64) {
	return (used - r.initCPU).Seconds(), float64(monotonicNs()-r.startNs) / 1e9
}

// learnStart asks the init when the program started; false: it has not.
func (r *run) learnStart() (bool, error) {
	startNs, initCPU, err := r.b.whenStarted(r.b.runs)
	if err != nil || startNs == 0 {
		return false, err
	}
	r.startNs, r.initCPU, r.startKnown = startNs, initCPU, true
	return true, nil
}

// end closes the run's accounting, once, and reports what the run used.
func (r *run) end() (cgroup.Usage, error) {
	if !r.accounting {
		return cgroup.Usage{}, nil
	}
	r.accounting = false
	return r.b.acct.End()
}

// abort ends a run whose box is in doubt: the init is stopped, and the next
// run starts a new one.
func (r *run) abort(err error) error {
	r.end()
	return fmt.Errorf("box %d: %w", r.b.id, r.b.initFailed(err))
}

// finish ends the run's accounting and decides its verdict: the one place
// that builds a native run's outcome. exited is the init's report of the
// end, nil when the init is gone (initGone). That is an outcome only when
// the OOM killer took the init in a run that it killed for memory: a run's
// limit picks among the run's processes only, yet the init's memory lives
// on the same host. That run
// exceeded its memory limit, and the box gets a new init.
func (r *run) finish(exited *initMessage, killedFor spec.Limit, initGone error) (spec.RunResult, error) {
	usage, err := r.end()
	if exited == nil && (err != nil || usage.OOMKills == 0) {
		return spec.RunResult{}, r.abort(initGone)
	}
	if err != nil {
		return spec.RunResult{}, r.abort(err)
	}
	endNs, status := monotonicNs(), unix.WaitStatus(0)
	if exited != nil {
		r.startNs, r.startKnown = exited.StartNs, true
		endNs, status = exited.EndNs, unix.WaitStatus(exited.WaitStatus)
		if exited.RunCPUNs != nil { // the init measured it, without its own work
			usage.CPUTime = time.Duration(*exited.RunCPUNs)
		}
	} else {
		r.b.stopInit()
	}
	r.endNs = endNs
	return spec.Decide(r.job.Limits, outcome(r.startNs, endNs, status, killedFor, usage)), nil
}

// recvRun waits for the init's next message about the current run; replies
// about an earlier run (one that a fault cut short) are dropped.
func (b *box) recvRun(timeout time.Duration) (*initMessage, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := b.recv(time.Until(deadline))
		if err != nil || m.Run == b.runs {
			return m, err
		}
	}
}

// rlimits are the per-process limits of a job. CPU time is enforced through
// the cgroup; RLIMIT_CPU only stands behind it in case sandboxd stalls.
func rlimits(job *executor.Job) []rlimitValue {
	l := job.Limits
	orInfinity := func(v int64) uint64 {
		if v > 0 {
			return uint64(v)
		}
		return unix.RLIM_INFINITY
	}
	return []rlimitValue{
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_CPU, uint64(math.Ceil(*l.CPUTime)) + 1},
		{unix.RLIMIT_FSIZE, orInfinity(job.FileSize)},
		{unix.RLIMIT_NOFILE, uint64(job.OpenFiles)},
		// Processes are counted per uid, and each box has a uid of its own;
		// this is exact on cgroup v1, where the pids group also holds the init.
		{unix.RLIMIT_NPROC, uint64(*l.Processes)},
		{unix.RLIMIT_STACK, orInfinity(job.Stack)},
	}
}

// errRunEnded tells that ctx ended the run: the box is sound.
var errRunEnded = errors.New("the run was ended")

// await enforces the time limits until the init reports the end of the run
// (exited), or that its program could not start (failed). CPU time is read
// from the run's cgroup at intervals that shrink as the limit nears: CPU
// time grows at most as fast as wall time times the CPUs the run can use,
// so a check can be put off by (limit - used) / CPUs without missing the
// limit. When ctx ends, the run is killed (errRunEnded).
func (r *run) await(ctx context.Context) (ended *initMessage, killedFor spec.Limit, err error) {
	b, l := r.b, r.job.Limits
	cpus := runtime.NumCPU()
	if int64(cpus) > *l.Processes {
		cpus = int(*l.Processes)
	}
	killedFor = spec.NoLimit
	killed := false
	// checking: a check of the CPU limit is with the init; checkedAt is the
	// counter's reading that asked for it.
	checking, checkedAt := false, time.Duration(0)
	kill := func() {
		b.kill.send(&initMessage{Op: opKill, Run: b.runs}, nil)
		killed = true
	}
	wait := nextCheck(l, 0, 0, cpus)
	for {
		m, err := b.recvRun(wait)
		switch {
		case err == nil && m.Op == opFailed:
			return m, spec.NoLimit, nil
		case err == nil && m.Op == opExited:
			if killedFor == spec.NoLimit && ctx.Err() != nil {
				if killedFor, err = endedFor(ctx, m.EndNs); err != nil {
					return nil, 0, err
				}
			}
			return m, killedFor, nil
		case err == nil && m.Op == opCPU && checking:
			checking = false
			if m.Killed {
				killedFor, killed = spec.LimitCPUTime, true
				continue
			}
			// The rest of the reading was the init's work.
			r.initCPU = checkedAt - time.Duration(*m.RunCPUNs)
			wait = minCheckInterval
			continue
		case err == nil:
			continue
		case err != errNoMessage:
			return nil, 0, err
		case killed:
			wait = maxCheckInterval
			continue
		case ctx.Err() != nil:
			killedFor, _ = endedFor(ctx, math.MaxInt64)
			kill()
			continue
		case checking:
			wait = maxCheckInterval
			continue
		}
		used, err := b.acct.CPUTime()
		if err != nil {
			kill()
			return nil, 0, err
		}
		cpu, elapsed := r.sofar(used)
		limit := exceededLimit(l, cpu, elapsed)
		if limit != spec.NoLimit && !r.startKnown {
			// The figures count from the request until the init tells
			// when the program started.
			started, err := r.learnStart()
			if err != nil {
				kill()
				return nil, 0, err
			}
			if !started {
				wait = minCheckInterval
				continue
			}
			cpu, elapsed = r.sofar(used)
			limit = exceededLimit(l, cpu, elapsed)
		}
		if limit == spec.LimitCPUTime && r.checkCPU {
			b.kill.send(&initMessage{Op: opCheckCPU, Run: b.runs, CPULimitNs: int64(math.Ceil(*l.CPUTime * 1e9))}, nil)
			checking, checkedAt, wait = true, used, maxCheckInterval
			continue
		}
		if killedFor = limit; killedFor != spec.NoLimit {
			kill()
			continue
		}
		wait = nextCheck(l, cpu, elapsed, cpus)
	}
}

// exceededLimit tells which time limit, if any, a run has gone past, in the
// order of verdict priority.
func exceededLimit(l spec.Limits, cpu, elapsed float64) spec.Limit {
	switch {
	case cpu >= *l.CPUTime:
		return spec.LimitCPUTime
	case l.RealTime != nil && elapsed >= *l.RealTime:
		return spec.LimitRealTime
	case l.IdlenessTime != nil && spec.IdlenessOf(elapsed, cpu) >= *l.IdlenessTime:
		return spec.LimitIdlenessTime
	}
	return spec.NoLimit
}

func nextCheck(l spec.Limits, cpu, elapsed float64, cpus int) time.Duration {
	wait := maxCheckInterval.Seconds()
	wait = math.Min(wait, (*l.CPUTime-cpu)/float64(cpus))
	if l.RealTime != nil {
		wait = math.Min(wait, *l.RealTime-elapsed)
	}
	if l.IdlenessTime != nil {
		wait = math.Min(wait, *l.IdlenessTime-spec.IdlenessOf(elapsed, cpu))
	}
	d := time.Duration(wait * float64(time.Second))
	if d < minCheckInterval {
		d = minCheckInterval
	}
	return d
}

// outcome puts together what is known of a finished run: its main process
// ended at endNs with status.
func outcome(startNs, endNs int64, status unix.WaitStatus, killedFor spec.Limit, u cgroup.Usage) spec.Outcome {
	real := float64(endNs-startNs) / 1e9
	cpu := u.CPUTime.Seconds()
	out := spec.Outcome{
		KilledFor: killedFor,
		OOMKilled: u.OOMKills > 0,
		Metrics:   spec.Metrics{RealTime: real, CPUTime: cpu, IdlenessTime: spec.IdlenessOf(real, cpu), Memory: u.PeakMemory},
	}
	if status.Signaled() {
		out.Signal = int(status.Signal())
	} else {
		out.ExitCode = status.ExitStatus()
	}
	return out
}
