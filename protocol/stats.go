package protocol

import (
	"context"
	"maps"
	"sync"
	"time"

	"sandboxd/spec"
)

// runCounts are what stats tells of runs and run_groups: those queued and
// running now, and how those answered ended.
type runCounts struct {
	mu              sync.Mutex
	queued, running int
	verdicts        map[string]uint64
	errors          map[spec.Code]uint64
}

func (c *runCounts) init() {
	c.verdicts = map[string]uint64{}
	for _, v := range spec.Verdicts {
		c.verdicts[v] = 0
	}
	c.errors = map[spec.Code]uint64{}
}

// queue counts a valid request that waits for its box's turn and a slot.
func (c *runCounts) queue(req *request) {
	if req.counted {
		c.mu.Lock()
		c.queued++
		c.mu.Unlock()
	}
}

// start counts a request that holds a slot.
func (c *runCounts) start(req *request) {
	if req.counted {
		c.mu.Lock()
		c.queued--
		c.running++
		req.running = true
		c.mu.Unlock()
	}
}

// finish counts an answered request by its verdicts or its error.
func (c *runCounts) finish(req *request, result any, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !req.counted:
	case req.running:
		c.running--
	default:
		c.queued--
	}
	if err != nil {
		c.errors[spec.CodeOf(err)]++
		return
	}
	switch r := result.(type) {
	case spec.RunResult:
		c.verdicts[r.Verdict]++
	case spec.GroupResult:
		for _, p := range r.Results {
			c.verdicts[p.Verdict]++
		}
	}
}

func handleStats(_ context.Context, s *Server, _ *noArgs, _ spec.BoxInfo) (spec.StatsReply, error) {
	e := s.Exec.Stats()
	r := spec.StatsReply{
		Uptime: time.Since(s.started).Seconds(), Executor: e.Backend, BoxesOpen: e.BoxesOpen,
		Parallel: s.Parallel, Cgroup: e.Cgroup, CPUs: e.CPUs,
	}
	s.counts.mu.Lock()
	r.RunsRunning, r.RunsQueued = s.counts.running, s.counts.queued
	r.Runs, r.RunErrors = maps.Clone(s.counts.verdicts), maps.Clone(s.counts.errors)
	s.counts.mu.Unlock()
	return r, nil
}
