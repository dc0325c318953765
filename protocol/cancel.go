package protocol

import (
	"context"
	"slices"
	"strconv"

	json "github.com/goccy/go-json"

	"sandboxd/spec"
)

// idKey is an id as cancel compares it: the string or the integer it
// holds, however JSON spelled it ("\u0061" is "a"); empty for no id.
func idKey(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	if raw[0] == '"' {
		var s string
		json.Unmarshal(raw, &s)
		return "s" + s
	}
	var n int64
	json.Unmarshal(raw, &n)
	return "i" + strconv.FormatInt(n, 10)
}

type cancelArgs struct {
	envelope
	Target json.RawMessage `json:"target"`
}

func (a *cancelArgs) validate() error {
	if len(a.Target) == 0 || string(a.Target) == "null" {
		return spec.Errorf(spec.CodeInvalidArgument, "cancel needs the target: the id of the request to end")
	}
	if !validID(a.Target) {
		return spec.Errorf(spec.CodeInvalidArgument, "target must be a request id: a string of valid Unicode or an integer")
	}
	return nil
}

// handleCancel ends the runs and run_groups in flight whose id is the
// target: a queued one is taken out of its queues and answered at once, a
// running one is killed. Each is answered with cancelled, and cancel is
// answered after them.
func handleCancel(_ context.Context, s *Server, a *cancelArgs, _ spec.BoxInfo) (spec.Done, error) {
	target := spec.Clip(string(a.Target), spec.MaxQuoted)
	by := "a cancel"
	if len(a.ID) > 0 {
		by = "cancel " + spec.Clip(string(a.ID), spec.MaxQuoted)
	}
	cause := spec.Errorf(spec.CodeCancelled, "request %s was cancelled by %s", target, by)
	key := idKey(a.Target)
	selfToo := key == idKey(a.ID) // the cancel is in flight under its own id

	s.queuesM.Lock()
	var targets, takenOut []*request
	var refused string
	for _, r := range s.inflight[key] {
		switch {
		case r.cmd.name == "cancel" && selfToo:
			selfToo = false // itself, or one like it
		case !r.cmd.takesSlot:
			refused = r.cmd.name
		default:
			targets = append(targets, r)
			if s.takeOut(r, cause) {
				takenOut = append(takenOut, r)
			}
		}
	}
	s.queuesM.Unlock()
	if len(targets) == 0 {
		if refused != "" {
			return spec.Done{}, spec.Errorf(spec.CodeInvalidArgument, "request %s is a %s, which cannot be cancelled: only run and run_group can", target, refused)
		}
		return spec.Done{}, spec.Errorf(spec.CodeNoSuchRequest, "no request %s is queued or running: it was answered already, or never sent", target)
	}
	for _, r := range takenOut {
		if r.group == nil {
			s.answer(r, nil, cause)
		} else {
			// With the first cause it was ended with: a close_box of one
			// of its boxes may have ended it before.
			s.answer(r, nil, spec.Ended(r.group.ctx, "not started"))
			close(r.group.done) // the boxes it held go on
		}
		s.wg.Done()
	}
	for _, r := range targets {
		<-r.answered
	}
	return spec.Done{}, nil
}

// takeOut ends a run or run_group with cause, under queuesM: one that has
// its turn is ended (killed if it runs, never started if it waits for a
// slot) and answers for itself; one still queued is taken out of its
// queues, and takeOut tells that it must be answered.
func (s *Server) takeOut(r *request, cause error) (queued bool) {
	if r.group != nil {
		r.end(cause) // the first cause stays
		if r.group.arrived == len(r.boxes) || r.group.takenOut {
			return false // it has its turn on every box, or another cancel answers it
		}
		r.group.takenOut = true
		for _, box := range r.boxes {
			if q := s.queues[box]; q != nil {
				q.pending = slices.DeleteFunc(q.pending, func(p *request) bool { return p == r })
			}
		}
		return true
	}
	q := s.queues[r.box]
	if q == nil {
		return false // answered meanwhile
	}
	if q.current == r {
		if r.end != nil {
			r.end(cause)
		}
		return false
	}
	if i := slices.Index(q.pending, r); i >= 0 {
		q.pending = slices.Delete(q.pending, i, i+1)
		return true
	}
	return false // ended by close_box or reset_box, its answer under way
}
