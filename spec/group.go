package spec

// GroupProgram is one program of a run_group: a run request in its box.
type GroupProgram struct {
	Box int `json:"box"`
	RunRequest
}

// PipeEnd names a file descriptor of a program of a group.
type PipeEnd struct {
	Program int `json:"program"`
	FD      int `json:"fd"`
}

// Pipe connects From's fd (the write end) to To's fd (the read end).
type Pipe struct {
	From PipeEnd `json:"from"`
	To   PipeEnd `json:"to"`
}

// GroupRequest is the run_group command: programs started at once, each in
// its own box, joined by pipes.
type GroupRequest struct {
	Programs []GroupProgram `json:"programs"`
	Pipes    []Pipe         `json:"pipes"`
	// IdlenessTime ends a deadlock: when no program of the group has used
	// CPU for that long, every program still running is killed.
	IdlenessTime *float64 `json:"idleness_time_limit"`
}

// GroupResult is run_group's reply: results[i] is programs[i]'s, and
// ExitOrder lists the programs in the order their main processes ended.
type GroupResult struct {
	Results   []RunResult `json:"results"`
	ExitOrder []int       `json:"exit_order"`
}

// MaxGroupPrograms bounds the programs of one group.
const MaxGroupPrograms = 16

// MaxPipedFD is the highest fd a pipe may name: 0, 1, 2 and 3 to 9.
const MaxPipedFD = 9

// Validate checks a group: each program a valid run request in a box of its
// own, each pipe between programs of the group, no fd named twice nor both
// piped and opened from a stdio path.
func (g *GroupRequest) Validate() error {
	if len(g.Programs) == 0 || len(g.Programs) > MaxGroupPrograms {
		return Errorf(CodeInvalidArgument, "programs must list 1 to %d programs", MaxGroupPrograms)
	}
	boxes := map[int]int{}
	for i := range g.Programs {
		p := &g.Programs[i]
		if err := p.Validate(); err != nil {
			return Errorf(CodeOf(err), "programs[%d]: %s", i, err.Error())
		}
		if j, ok := boxes[p.Box]; ok {
			return Errorf(CodeInvalidArgument, "programs[%d] and programs[%d] are both in box %d: each program of a group runs in a box of its own", j, i, p.Box)
		}
		boxes[p.Box] = i
	}
	type end struct{ program, fd int }
	named := map[end]bool{}
	for i, p := range g.Pipes {
		for _, e := range []struct {
			side string
			end  PipeEnd
		}{{"from", p.From}, {"to", p.To}} {
			if e.end.Program < 0 || e.end.Program >= len(g.Programs) {
				return Errorf(CodeInvalidArgument, "pipes[%d].%s: there is no program %d (programs has %d)", i, e.side, e.end.Program, len(g.Programs))
			}
			if e.end.FD < 0 || e.end.FD > MaxPipedFD {
				return Errorf(CodeInvalidArgument, "pipes[%d].%s: fd %d cannot be piped: fds 0 to %d can", i, e.side, e.end.FD, MaxPipedFD)
			}
			k := end{e.end.Program, e.end.FD}
			if named[k] {
				return Errorf(CodeInvalidArgument, "pipes[%d].%s: fd %d of program %d is piped twice", i, e.side, e.end.FD, e.end.Program)
			}
			named[k] = true
			stdio := g.Programs[e.end.Program].Stdio
			if path := [3]string{stdio.Stdin, stdio.Stdout, stdio.Stderr}; e.end.FD < 3 && path[e.end.FD] != "" {
				return Errorf(CodeInvalidArgument, "pipes[%d].%s: fd %d of program %d is piped and also opened from %s", i, e.side, e.end.FD, e.end.Program, Quote(path[e.end.FD]))
			}
		}
	}
	if t := g.IdlenessTime; t != nil && !(*t > 0 && *t <= MaxTimeLimit) {
		return Errorf(CodeInvalidArgument, "idleness_time_limit must be a positive number of seconds up to %g", MaxTimeLimit)
	}
	return nil
}
