package executor

import (
	"context"
	"slices"
	"sync"

	"sandboxd/spec"
)

// CPUPool hands out the CPUs of --cpus, each to one run at a time. Callers
// are served in the order they asked, so that a run_group waiting for
// several CPUs is not passed forever by single runs taking each one freed.
type CPUPool struct {
	size    int
	mu      sync.Mutex
	free    []int // in order
	waiting []*cpuWait
}

type cpuWait struct {
	n   int
	got chan []int // buffered: given once, without waiting for the taker
}

// NewCPUPool makes a pool of cpus.
func NewCPUPool(cpus []int) *CPUPool {
	return &CPUPool{size: len(cpus), free: slices.Sorted(slices.Values(cpus))}
}

// Size is the number of CPUs of the pool.
func (p *CPUPool) Size() int { return p.size }

// InUse is the number of CPUs taken now.
func (p *CPUPool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.size - len(p.free)
}

// Take waits until n CPUs are free, after those who asked before, and
// takes them all at once, the lowest first. n must be at most Size. When ctx
// ends first, it takes none and returns spec.Ended's error.
func (p *CPUPool) Take(ctx context.Context, n int) ([]int, error) {
	w := &cpuWait{n: n, got: make(chan []int, 1)}
	p.mu.Lock()
	p.waiting = append(p.waiting, w)
	p.serve()
	p.mu.Unlock()
	select {
	case cpus := <-w.got:
		return cpus, nil
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := slices.Index(p.waiting, w); i >= 0 {
		p.waiting = slices.Delete(p.waiting, i, i+1)
		p.serve() // those behind it may fit now
	} else {
		p.give(<-w.got) // served meanwhile
	}
	return nil, spec.Ended(ctx, "not started: it waited for a CPU")
}

// Give returns CPUs that Take gave.
func (p *CPUPool) Give(cpus []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.give(cpus)
}

func (p *CPUPool) give(cpus []int) {
	p.free = slices.Sorted(slices.Values(append(p.free, cpus...)))
	p.serve()
}

// serve gives CPUs to the waiting, in order, while the first fits.
func (p *CPUPool) serve() {
	for len(p.waiting) > 0 && p.waiting[0].n <= len(p.free) {
		w := p.waiting[0]
		p.waiting = p.waiting[1:]
		w.got <- slices.Clone(p.free[:w.n])
		p.free = p.free[w.n:]
	}
}
