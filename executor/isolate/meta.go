package isolate

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"

	"sandboxd/spec"
)

// meta is what `isolate --run --meta=FILE` reports about one run.
type meta struct {
	Time, WallTime float64 // seconds: CPU time and wall time
	MaxRSS         int64   // kilobytes, of the largest process
	CgMem          int64   // kilobytes, peak of the run's memory cgroup; 0 without --cg
	OOMKilled      bool
	ExitCode       int
	ExitSig        int
	Killed         bool
	// Status is RE, SG, TO or XX; empty when the program exited with 0 in time.
	Status  string
	Message string
}

// parseMeta reads a meta file: one key:value per line. Lines are split
// at the first colon only, since a message may hold colons. Keys sandboxd
// does not use are skipped, so that newer isolates may add some. A line
// with no key continues the message: isolate 1.x's cgroup errors quote the
// value they wrote, newline included, before ": " and the errno's text.
func parseMeta(data []byte) (meta, error) {
	var m meta
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return m, fmt.Errorf("isolate meta: line %q has no colon", line)
		}
		var err error
		switch key {
		case "":
			m.Message += "\n" + line
		case "time":
			m.Time, err = strconv.ParseFloat(val, 64)
		case "time-wall":
			m.WallTime, err = strconv.ParseFloat(val, 64)
		case "max-rss":
			m.MaxRSS, err = strconv.ParseInt(val, 10, 64)
		case "cg-mem":
			m.CgMem, err = strconv.ParseInt(val, 10, 64)
		case "cg-oom-killed":
			m.OOMKilled = val != "0"
		case "exitcode":
			m.ExitCode, err = strconv.Atoi(val)
		case "exitsig":
			m.ExitSig, err = strconv.Atoi(val)
		case "killed":
			m.Killed = val != "0"
		case "status":
			m.Status = val
		case "message":
			m.Message = val
		}
		if err != nil {
			return m, fmt.Errorf("isolate meta: %s: %w", key, err)
		}
	}
	return m, sc.Err()
}

// limitBelowStart tells whether an XX message is isolate 1.x refusing the
// memory limit because the run's cgroup already holds more: on cgroup v1 the
// box's process that is to exec the program joins the group, then sets the
// limit, which the kernel refuses with EBUSY when it cannot reclaim the
// group down to it. That process is the program's start: the limit is too
// small for the program to be started, as the native backend finds it.
func limitBelowStart(message string) bool {
	setLimit, errno, ok := strings.Cut(message, "\n: ")
	return ok && strings.HasPrefix(setLimit, "Cannot set ") && strings.Contains(setLimit, "/memory.limit_in_bytes to ") &&
		errno == "Device or resource busy" // glibc's strerror(EBUSY), which isolate prints
}

// failed turns an XX status (isolate's internal error) into an error
// reply. When the program could not be started (its stdio files could not be
// opened, or execve failed), it is exec_failed, as in the native backend.
func failed(message string) error {
	if strings.HasPrefix(message, "execve(") || strings.HasPrefix(message, "open(") {
		return spec.Errorf(spec.CodeExecFailed, "%s", message)
	}
	return fmt.Errorf("isolate failed: %s", message)
}

// wallLimit is the --wall-time of a run: the real time limit, or CPU
// plus idleness time when that is sooner (isolate has no idleness limit, and
// a run that is idle past its limit has been running for at least that long
// beyond its CPU time). Zero when neither limit is set.
func wallLimit(l spec.Limits) (seconds float64, cause spec.Limit) {
	if l.RealTime != nil {
		seconds, cause = *l.RealTime, spec.LimitRealTime
	}
	if l.IdlenessTime != nil {
		if idle := *l.CPUTime + *l.IdlenessTime; cause == spec.NoLimit || idle < seconds {
			seconds, cause = idle, spec.LimitIdlenessTime
		}
	}
	return seconds, cause
}

// outcome maps a meta file onto what spec.Decide needs. A TO status does not
// say which limit killed the run; the figure that went furthest past its
// limit did, as isolate kills at the first poll after a limit is passed.
func (m meta) outcome(l spec.Limits) spec.Outcome {
	mem := m.CgMem
	if mem == 0 {
		mem = m.MaxRSS // without cgroups, the largest process is all isolate knows
	}
	o := spec.Outcome{
		Signal:    m.ExitSig,
		ExitCode:  m.ExitCode,
		OOMKilled: m.OOMKilled,
		Metrics: spec.Metrics{
			RealTime:     m.WallTime,
			CPUTime:      m.Time,
			IdlenessTime: spec.IdlenessOf(m.WallTime, m.Time),
			Memory:       mem << 10,
		},
	}
	if m.Status == "TO" {
		o.KilledFor = spec.LimitCPUTime
		if wall, cause := wallLimit(l); cause != spec.NoLimit && m.WallTime/wall > m.Time/(*l.CPUTime) {
			o.KilledFor = cause
		}
	}
	return o
}

// secondsArg formats a time limit for isolate, which counts whole
// milliseconds and treats 0 as "no limit": round up, to at least 1 ms. The
// rounding to microseconds first keeps 1.1 s from becoming 1.101 s.
func secondsArg(s float64) string {
	ms := max(math.Ceil(math.Round(s*1e6)/1000), 1)
	return strconv.FormatFloat(ms/1000, 'f', 3, 64)
}

// kilobytes rounds a byte count up to isolate's kilobytes.
func kilobytes(bytes int64) int64 {
	kb := bytes / 1024
	if bytes%1024 != 0 {
		kb++
	}
	return kb
}
