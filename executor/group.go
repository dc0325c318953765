package executor

import (
	"sort"
	"sync"
	"time"

	"sandboxd/spec"
)

// Group is a run_group as a backend carries it out: a job per program, in
// the order of the request, and the pipes between them.
type Group struct {
	Members []GroupMember
	Pipes   []spec.Pipe
	// IdlenessTime (seconds), when set, bounds the time in which no
	// program of the group uses CPU.
	IdlenessTime *float64
}

// GroupMember is one program of a group: its box and its job.
type GroupMember struct {
	Box int
	Job *Job
}

// WatchGroupIdleness calls onIdle, and returns, once a group has been idle
// for limit: its real time, elapsed(), less the CPU time of all its
// programs, cpu(), the time in which none of them used a CPU (as in a
// deadlock on the pipes). Idleness grows at most as fast as real time, so
// each check is put off by what is left of the limit, within [minWait,
// maxWait]. It returns without calling onIdle when done is closed.
func WatchGroupIdleness(limit float64, elapsed, cpu func() time.Duration, minWait, maxWait time.Duration, done <-chan struct{}, onIdle func()) {
	wait := time.Duration(limit * float64(time.Second))
	for {
		select {
		case <-done:
			return
		case <-time.After(max(wait, minWait)):
		}
		idle := spec.IdlenessOf(elapsed().Seconds(), cpu().Seconds())
		if idle >= limit {
			onIdle()
			return
		}
		wait = min(time.Duration((limit-idle)*float64(time.Second)), maxWait)
	}
}

// LockGroupBoxes gets the boxes of a group's members from table and locks
// each (lock names its mutex) in the order of their ids, as every group
// locks them: two groups that share boxes cannot hold one each. unlock
// gives them back.
func LockGroupBoxes[B any](table *BoxTable[B], members []GroupMember, lock func(*B) *sync.Mutex) (boxes []*B, unlock func(), err error) {
	boxes = make([]*B, len(members))
	for i, m := range members {
		if boxes[i], err = table.Get(m.Box); err != nil {
			return nil, nil, spec.Errorf(spec.CodeOf(err), "programs[%d]: %s", i, err.Error())
		}
	}
	order := make([]int, len(members))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(i, j int) bool { return members[order[i]].Box < members[order[j]].Box })
	for _, i := range order {
		lock(boxes[i]).Lock()
	}
	return boxes, func() {
		for _, b := range boxes {
			lock(b).Unlock()
		}
	}, nil
}
