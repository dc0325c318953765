package executor

import (
	"context"
	"maps"

	"sandboxd/spec"
)

// A HostView is a host directory that a run may be shown, at the same path
// in its box, only while it runs (a runtime's store, say).
type HostView struct {
	Path     string
	Writable bool
}

// Runtime is what a run gets beyond its request: the base of its
// environment, the host views it needs, and bounds that replace a box's
// per-process defaults. The zero Runtime is a run without one.
type Runtime struct {
	// Env is the base of the environment, under the request's own; nil: none.
	Env   map[string]string
	Views []HostView
	// FileSize (bytes) and OpenFiles, when positive, replace the defaults
	// of a run's bounds on the size of a file (none) and on open files (1024).
	FileSize, OpenFiles int64
}

// Job is a run as a backend carries it out: every policy decided, so that a
// backend only translates it into its own terms.
type Job struct {
	Argv []string
	// Env is the whole environment of the program, sorted.
	Env []string
	// Path is where a bare argv[0] is searched: Env's PATH, or defaultPath.
	Path string
	// Stdio as the request names it (relative to /space, empty for /dev/null).
	Stdio  spec.Stdio
	Limits spec.Limits
	// FileSize (bytes) and OpenFiles bound every process of the run, and
	// Stack (bytes) its stack; a FileSize or Stack of 0 is no bound.
	FileSize, OpenFiles, Stack int64
	// Views are the host views the run is shown.
	Views []HostView
}

// defaultPath is searched for a bare program name when the run's environment has no PATH.
const defaultPath = "/usr/local/bin:/usr/bin:/bin"

// defaultOpenFiles bounds a program's open files; isolate's own default, 64,
// is too few for some runtimes.
const defaultOpenFiles = 1024

// NewJob turns a validated request and its runtime into the job a box's
// backend carries out.
func NewJob(req *spec.RunRequest, rt Runtime) *Job {
	env := req.Env
	if rt.Env != nil {
		env = maps.Clone(rt.Env)
		maps.Copy(env, req.Env)
	}
	j := &Job{
		Argv:      req.Argv,
		Env:       runEnv(env),
		Stdio:     req.Stdio,
		Limits:    req.Limits,
		FileSize:  rt.FileSize,
		OpenFiles: defaultOpenFiles,
		Views:     rt.Views,
	}
	if j.Path = envValue(j.Env, "PATH"); j.Path == "" {
		j.Path = defaultPath
	}
	// No file size bound by default: a file in /space or /tmp ends at the
	// box's quota with ENOSPC, as on a full disk, and every other file a
	// program could write to is read-only or a device.
	if req.FileSize != nil {
		j.FileSize = *req.FileSize
	}
	if req.OpenFiles != nil {
		j.OpenFiles = *req.OpenFiles
	} else if rt.OpenFiles > 0 {
		j.OpenFiles = rt.OpenFiles
	}
	switch {
	case req.Stack != nil:
		j.Stack = *req.Stack
	case req.Memory != nil:
		// The stack may take as much as the memory limit; a tiny memory limit
		// must end in MemoryLimitExceeded, not in a stack overflow at start.
		j.Stack = max(*req.Memory, 8<<20)
	}
	return j
}

// Run runs a validated request in box id of e, with runtime rt: the one way
// from a request to a run.
func Run(ctx context.Context, e Executor, id int, req *spec.RunRequest, rt Runtime) (spec.RunResult, error) {
	return e.Run(ctx, id, NewJob(req, rt))
}
