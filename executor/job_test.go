package executor

import (
	"slices"
	"testing"

	"sandboxd/spec"
)

// NewJob decides every policy of a run once, for every backend.
func TestNewJob(t *testing.T) {
	req := &spec.RunRequest{Argv: []string{"prog"}, Env: map[string]string{"A": "request", "B": "b"}}
	store := HostView{Path: "/store"}

	j := NewJob(req, Runtime{Env: map[string]string{"A": "runtime", "PATH": "/rt/bin"}, Views: []HostView{store}})
	if want := []string{"A=request", "B=b", "PATH=/rt/bin"}; !slices.Equal(j.Env, want) {
		t.Errorf("env %q, want %q: the request's variables over the runtime's", j.Env, want)
	}
	if j.Path != "/rt/bin" || !slices.Equal(j.Views, []HostView{store}) {
		t.Errorf("path %q, views %v", j.Path, j.Views)
	}
	if j.FileSize != 0 || j.OpenFiles != 1024 || j.Stack != 0 {
		t.Errorf("file size %d, open files %d, stack %d: want unbounded (the box's quota ends writes with ENOSPC), 1024, unbounded", j.FileSize, j.OpenFiles, j.Stack)
	}

	mem := int64(1 << 20)
	req = &spec.RunRequest{Argv: []string{"prog"}, Env: map[string]string{}, Limits: spec.Limits{Memory: &mem}}
	j = NewJob(req, Runtime{FileSize: 4096, OpenFiles: 16})
	if len(j.Env) != 0 || j.Path != defaultPath {
		t.Errorf("env %q, path %q: want none, and the default PATH", j.Env, j.Path)
	}
	if j.FileSize != 4096 || j.OpenFiles != 16 || j.Stack != 8<<20 {
		t.Errorf("file size %d, open files %d, stack %d: want the runtime's bounds and an 8 MiB stack", j.FileSize, j.OpenFiles, j.Stack)
	}

	// The request's own bounds win over the runtime's and the defaults.
	req = &spec.RunRequest{Argv: []string{"prog"}, Limits: spec.Limits{Memory: &mem},
		ProcessLimits: spec.ProcessLimits{Stack: new(int64(1 << 16)), FileSize: new(int64(1 << 20)), OpenFiles: new(int64(8))}}
	j = NewJob(req, Runtime{FileSize: 4096, OpenFiles: 16})
	if j.FileSize != 1<<20 || j.OpenFiles != 8 || j.Stack != 1<<16 {
		t.Errorf("file size %d, open files %d, stack %d: want the request's 1 MiB, 8, 64 KiB", j.FileSize, j.OpenFiles, j.Stack)
	}

	t.Setenv("SANDBOXD_JOB_TEST", "inherited")
	j = NewJob(&spec.RunRequest{Argv: []string{"prog"}}, Runtime{})
	if !slices.Contains(j.Env, "SANDBOXD_JOB_TEST=inherited") {
		t.Errorf("a request without env inherits sandboxd's: %q", j.Env)
	}
}
