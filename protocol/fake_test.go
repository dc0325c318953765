package protocol

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"sandboxd/executor"
	"sandboxd/spec"
)

// fakeExecutor does no real work: the protocol layer is what is tested and
// fuzzed. Box 0 exists from the start and open_box opens the lowest free id;
// every /space is nowhere, so file commands get as far as opening it. A run
// answers OK at once, or, while held, waits until released or ended.
type fakeExecutor struct {
	mu    sync.Mutex
	open  map[int]bool
	calls []string // "run 0", "close_box 1", ... in the order made
	held  chan struct{}
	// spaces, when set, holds each box's /space (spaces/N), so that file
	// commands find files; runDelay, when set, is how long a run lasts
	// unless it is ended first.
	spaces   string
	runDelay time.Duration
}

func newFakeExecutor() *fakeExecutor { return &fakeExecutor{open: map[int]bool{0: true}} }

func (f *fakeExecutor) record(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

// hold makes runs wait until the function it returns is called.
func (f *fakeExecutor) hold() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.held = make(chan struct{})
	return sync.OnceFunc(func() { close(f.held) })
}

func (f *fakeExecutor) OpenBox(spec.BoxOptions) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := executor.LowestFree(1, executor.MaxBoxes, func(i int) bool { return f.open[i] })
	f.open[id] = true
	return id, nil
}

func (f *fakeExecutor) CloseBox(id int) error {
	f.record("close_box %d", id)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, id)
	return nil
}

func (f *fakeExecutor) ResetBox(id int) error {
	f.record("reset_box %d", id)
	return nil
}

func (f *fakeExecutor) Close() error { return nil }

func (f *fakeExecutor) Stats() executor.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return executor.Stats{Backend: "fake", BoxesOpen: len(f.open), Cgroup: spec.CgroupInfo{Mode: "none", Groups: []string{}}}
}

func (f *fakeExecutor) Box(id int) (spec.BoxInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.open[id] {
		return spec.BoxInfo{}, spec.Errorf(spec.CodeNoSuchBox, "no box %d is open", id)
	}
	if f.spaces == "" {
		return spec.BoxInfo{SpaceDir: fmt.Sprintf("/nonexistent/sandboxd-fake/%d/space", id)}, nil
	}
	dir := filepath.Join(f.spaces, strconv.Itoa(id))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return spec.BoxInfo{}, err
	}
	return spec.BoxInfo{SpaceDir: dir, UID: os.Getuid(), GID: os.Getgid()}, nil
}

func (f *fakeExecutor) Run(ctx context.Context, id int, job *executor.Job) (spec.RunResult, error) {
	f.record("run %d %q", id, job.Argv)
	f.mu.Lock()
	held := f.held
	f.mu.Unlock()
	var delay <-chan time.Time
	if f.runDelay > 0 {
		delay = time.After(f.runDelay)
	}
	if held != nil || delay != nil {
		select {
		case <-held:
		case <-delay:
		case <-ctx.Done():
			return spec.RunResult{}, spec.Ended(ctx, "the run was killed")
		}
	}
	exit := 0
	return spec.RunResult{Verdict: spec.VerdictOK, ExitCode: &exit}, nil
}

func (f *fakeExecutor) RunGroup(ctx context.Context, g *executor.Group) (spec.GroupResult, error) {
	var res spec.GroupResult
	for i, m := range g.Members {
		r, err := f.Run(ctx, m.Box, m.Job)
		if err != nil {
			return spec.GroupResult{}, err
		}
		res.Results = append(res.Results, r)
		res.ExitOrder = append(res.ExitOrder, i)
	}
	return res, nil
}
