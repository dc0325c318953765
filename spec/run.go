package spec

import (
	"math"
	"path"
	"strings"
)

// Limits are the per-run limits of the seed spec. A nil field is not enforced.
type Limits struct {
	RealTime     *float64 `json:"real_time_limit"`     // seconds
	CPUTime      *float64 `json:"cpu_time_limit"`      // seconds
	IdlenessTime *float64 `json:"idleness_time_limit"` // seconds
	Memory       *int64   `json:"memory_limit"`        // bytes
	Processes    *int64   `json:"processes_limit"`     // processes at once, including the program itself
}

// ProcessLimits are sandboxd's per-process bounds of a run, beyond the
// seed spec's limits: each process of the run gets them as rlimits. A nil
// field takes the default (see executor.NewJob).
type ProcessLimits struct {
	Stack     *int64 `json:"stack_limit"`      // bytes of a process's stack
	FileSize  *int64 `json:"file_size_limit"`  // bytes of the largest file a process may write
	OpenFiles *int64 `json:"open_files_limit"` // descriptors a process may hold
}

// MaxOpenFilesLimit bounds open_files_limit: the kernel's default ceiling
// (fs.nr_open), above which setrlimit fails.
const MaxOpenFilesLimit = 1 << 20

// Stdio names the files a program's standard streams are connected to, as
// paths inside the box (relative to /space). Empty means /dev/null.
type Stdio struct {
	Stdin  string `json:"stdin"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// RunRequest is the `run` command of the seed spec plus sandboxd's extensions.
type RunRequest struct {
	Argv []string `json:"argv"`
	// Env replaces the environment when non-nil; nil means "inherit".
	Env map[string]string `json:"env"`
	Stdio
	Limits
	ProcessLimits
	// Runtime names an installed runtime whose environment is the base of the
	// run's environment (the runtimes package resolves it).
	Runtime string `json:"runtime"`
}

// MaxMemoryLimit bounds memory_limit (1 PiB): far above any machine, far
// below the overflow of the sums it takes part in.
const MaxMemoryLimit = 1 << 50

// MaxTimeLimit bounds every time limit: a day is longer than any judge waits,
// and it keeps durations far from overflow.
const MaxTimeLimit = 86400.0

// Validate checks a run request against the rules of the spec: a non-empty
// argv, the required CPU time and processes limits, and positive finite
// values everywhere.
func (r *RunRequest) Validate() error {
	if len(r.Argv) == 0 || r.Argv[0] == "" {
		return Errorf(CodeInvalidArgument, "argv must be a non-empty list whose first element names the program")
	}
	for _, a := range r.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return Errorf(CodeInvalidArgument, "argv elements must not contain NUL bytes")
		}
	}
	for k, v := range r.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 {
			return Errorf(CodeInvalidArgument, "env: invalid variable %s", Quote(k))
		}
	}
	for _, p := range []struct{ name, value string }{{"argv[0]", r.Argv[0]}, {"stdin", r.Stdin}, {"stdout", r.Stdout}, {"stderr", r.Stderr}} {
		if strings.IndexByte(p.value, 0) >= 0 {
			return Errorf(CodeInvalidArgument, "%s: path must not contain NUL bytes", p.name)
		}
		if len(p.value) > MaxPath {
			return Errorf(CodeInvalidArgument, "%s: a path of %d bytes is longer than %d", p.name, len(p.value), MaxPath)
		}
	}
	if r.CPUTime == nil {
		return Errorf(CodeMissingLimit, "cpu_time_limit is required: CPU time must always be limited")
	}
	if r.Processes == nil {
		return Errorf(CodeMissingLimit, "processes_limit is required: the number of processes must always be limited")
	}
	for _, t := range []struct {
		name  string
		value *float64
	}{{"real_time_limit", r.RealTime}, {"cpu_time_limit", r.CPUTime}, {"idleness_time_limit", r.IdlenessTime}} {
		if t.value == nil {
			continue
		}
		if v := *t.value; math.IsNaN(v) || v <= 0 || v > MaxTimeLimit {
			return Errorf(CodeInvalidArgument, "%s must be a positive number of seconds up to %g", t.name, MaxTimeLimit)
		}
	}
	if r.Memory != nil && (*r.Memory <= 0 || *r.Memory > MaxMemoryLimit) {
		return Errorf(CodeInvalidArgument, "memory_limit must be a positive number of bytes up to %d", int64(MaxMemoryLimit))
	}
	if *r.Processes <= 0 || *r.Processes > math.MaxInt32 {
		return Errorf(CodeInvalidArgument, "processes_limit must be a positive integer")
	}
	for _, l := range []struct {
		name       string
		value      *int64
		max        int64
		unitSuffix string
	}{{"stack_limit", r.Stack, MaxMemoryLimit, " bytes"}, {"file_size_limit", r.FileSize, MaxMemoryLimit, " bytes"}, {"open_files_limit", r.OpenFiles, MaxOpenFilesLimit, ""}} {
		if l.value != nil && (*l.value <= 0 || *l.value > l.max) {
			return Errorf(CodeInvalidArgument, "%s must be a positive integer up to %d%s", l.name, l.max, l.unitSuffix)
		}
	}
	return nil
}

// BoxPath turns a path given relative to /space (or absolute inside the box)
// into a clean absolute path inside the box.
func BoxPath(p string) string {
	if !path.IsAbs(p) {
		p = path.Join(SpaceDir, p)
	}
	return path.Clean(p)
}

// SpaceDir is the working directory of every program, inside its box.
const SpaceDir = "/space"

// MaxPath is the longest path the kernel takes (PATH_MAX less its NUL).
// Longer paths are refused before anything is tried with them.
const MaxPath = 4095
