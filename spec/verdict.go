package spec

// Verdict names, as the seed spec spells them.
const (
	VerdictOK                  = "OK"
	VerdictSignaled            = "Signaled"
	VerdictCPUTimeLimit        = "CPUTimeLimitExceeded"
	VerdictRealTimeLimit       = "RealTimeLimitExceeded"
	VerdictIdlenessTimeLimit   = "IdlenessTimeLimitExceeded"
	VerdictMemoryLimitExceeded = "MemoryLimitExceeded"
)

// Verdicts are every verdict a run can get.
var Verdicts = []string{VerdictOK, VerdictSignaled, VerdictCPUTimeLimit, VerdictRealTimeLimit, VerdictIdlenessTimeLimit, VerdictMemoryLimitExceeded}

// Limit names a limit that a monitor can enforce by killing a run.
type Limit int

const (
	NoLimit Limit = iota
	LimitCPUTime
	LimitRealTime
	LimitIdlenessTime
	LimitMemory
)

// Metrics are what a run used, in the units of the limits.
type Metrics struct {
	RealTime     float64 `json:"real_time"`
	CPUTime      float64 `json:"cpu_time"`
	IdlenessTime float64 `json:"idleness_time"`
	Memory       int64   `json:"memory"`
}

// RunResult is the reply to `run`: a verdict and the metrics.
type RunResult struct {
	Verdict  string `json:"limit_verdict"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Metrics
}

// Outcome is what an executor observed of a finished run, before a verdict is
// decided: how the main process ended, which limit (if any) the executor
// enforced by killing it, whether the kernel killed for memory, and the metrics.
type Outcome struct {
	// Signal is the signal that ended the main process, or 0 if it exited.
	Signal   int
	ExitCode int
	// KilledFor is the limit the executor enforced, or NoLimit.
	KilledFor Limit
	// OOMKilled reports that the kernel killed a process of the run for memory.
	OOMKilled bool
	Metrics
}

// Decide is the one place where a verdict is decided. A limit counts as
// exceeded when the executor enforced it or when the final metric is past it;
// when several are exceeded the first of CPU time, real time, idleness time,
// memory wins. Otherwise the program exited or was signaled on its own.
func Decide(l Limits, o Outcome) RunResult {
	res := RunResult{Metrics: o.Metrics}
	over := func(limit *float64, used float64) bool { return limit != nil && used > *limit }
	switch {
	case o.KilledFor == LimitCPUTime || over(l.CPUTime, o.CPUTime):
		res.Verdict = VerdictCPUTimeLimit
	case o.KilledFor == LimitRealTime || over(l.RealTime, o.RealTime):
		res.Verdict = VerdictRealTimeLimit
	case o.KilledFor == LimitIdlenessTime || over(l.IdlenessTime, o.IdlenessTime):
		res.Verdict = VerdictIdlenessTimeLimit
	case o.KilledFor == LimitMemory || o.OOMKilled || l.Memory != nil && o.Memory > *l.Memory:
		// Past the limit without a kill: a limit smaller than the kernel
		// would hold a run to (cgroup v1: the program's fork).
		res.Verdict = VerdictMemoryLimitExceeded
	case o.Signal != 0:
		code := -o.Signal
		res.Verdict, res.ExitCode = VerdictSignaled, &code
	default:
		code := o.ExitCode
		res.Verdict, res.ExitCode = VerdictOK, &code
	}
	return res
}

// IdlenessOf is the idleness metric: real time not spent on a CPU, never below 0.
func IdlenessOf(real, cpu float64) float64 {
	if real > cpu {
		return real - cpu
	}
	return 0
}
