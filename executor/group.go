package executor

import "sandboxd/spec"

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
