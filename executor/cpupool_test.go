package executor

import (
	"context"
	"slices"
	"testing"
	"time"

	"sandboxd/spec"
)

func TestCPUPool(t *testing.T) {
	p := NewCPUPool([]int{5, 2, 7})
	ctx := context.Background()
	a, _ := p.Take(ctx, 1)
	b, _ := p.Take(ctx, 1)
	if !slices.Equal(a, []int{2}) || !slices.Equal(b, []int{5}) {
		t.Fatalf("the lowest free first: got %v, %v", a, b)
	}
	// A group of two waits for a second CPU; a single run that asks after
	// it waits behind it, though one CPU is free.
	group, single := make(chan []int), make(chan []int)
	go func() { cpus, _ := p.Take(ctx, 2); group <- cpus }()
	time.Sleep(20 * time.Millisecond)
	go func() { cpus, _ := p.Take(ctx, 1); single <- cpus }()
	select {
	case cpus := <-group:
		t.Fatalf("a group of two got %v with one CPU free", cpus)
	case cpus := <-single:
		t.Fatalf("a run passed the group waiting before it: got %v", cpus)
	case <-time.After(50 * time.Millisecond):
	}
	p.Give(a)
	if cpus := <-group; !slices.Equal(cpus, []int{2, 7}) {
		t.Errorf("the group got %v, want [2 7]", cpus)
	}
	p.Give(b)
	if cpus := <-single; !slices.Equal(cpus, []int{5}) {
		t.Errorf("the run got %v, want [5]", cpus)
	}
}

func TestCPUPoolEnded(t *testing.T) {
	p := NewCPUPool([]int{0, 1})
	held, _ := p.Take(context.Background(), 1)
	ctx, cancel := context.WithCancelCause(context.Background())
	ended := make(chan error)
	go func() { _, err := p.Take(ctx, 2); ended <- err }()
	time.Sleep(20 * time.Millisecond)
	// A run behind the ended group gets the free CPU at once.
	behind := make(chan []int)
	go func() { cpus, _ := p.Take(context.Background(), 1); behind <- cpus }()
	time.Sleep(20 * time.Millisecond)
	cancel(spec.Errorf(spec.CodeBoxClosed, "closed"))
	if err := <-ended; spec.CodeOf(err) != spec.CodeBoxClosed {
		t.Errorf("an ended wait: %v, want box_closed", err)
	}
	if cpus := <-behind; !slices.Equal(cpus, []int{1}) {
		t.Errorf("the run behind an ended wait got %v, want [1]", cpus)
	}
	p.Give(held)
	if cpus, err := p.Take(context.Background(), 1); err != nil || !slices.Equal(cpus, []int{0}) {
		t.Errorf("after all: %v, %v", cpus, err)
	}
}
