package protocol

import (
	"reflect"
	"testing"
)

// stats counts runs and run_groups queued and running now, and those
// answered by verdict or error code.
func TestStats(t *testing.T) {
	s := newSession(t)
	stats := func() map[string]any {
		t.Helper()
		s.send(`{"id":"s","command":"stats"}`)
		return s.expectReply("s", "")
	}
	r := stats()
	zero := map[string]any{"OK": 0.0, "Signaled": 0.0, "CPUTimeLimitExceeded": 0.0, "RealTimeLimitExceeded": 0.0, "IdlenessTimeLimitExceeded": 0.0, "MemoryLimitExceeded": 0.0}
	want := map[string]any{
		"id": "s", "executor": "fake", "boxes_open": 1.0, "runs_running": 0.0, "runs_queued": 0.0, "parallel": 2.0,
		"runs": zero, "run_errors": map[string]any{}, "cgroup": map[string]any{"mode": "none", "groups": []any{}},
	}
	uptime, ok := r["uptime"].(float64)
	delete(r, "uptime")
	if !ok || uptime < 0 || uptime > 60 || !reflect.DeepEqual(r, want) {
		t.Fatalf("stats at start: %v (uptime %v), want %v", r, uptime, want)
	}

	release := s.exec.hold()
	defer release()
	s.send(`{"command":"open_box"}`)
	s.reply()
	s.send(`{"id":1,`+runTrue+`}`, `{"id":2,`+runTrue+`}`, `{"id":3,`+runTrue+`}`) // one runs, two wait for box 0
	s.send(`{"id":4,"command":"run_group","programs":[{"box":1,"argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1}]}`)
	s.send(`{"id":5,"command":"run","argv":["/bin/true"],"processes_limit":1}`) // refused: counted once answered
	s.waitCalls(runBox0, 1)
	s.waitCalls(`run 1 ["/bin/true"]`, 1)
	r = stats()
	if r["boxes_open"] != 2.0 || r["runs_running"] != 2.0 || r["runs_queued"] != 2.0 {
		t.Errorf("with a run and a group running, two runs queued: %v", r)
	}
	s.send(`{"id":"c","command":"cancel","target":3}`)
	s.expectReply(3.0, "cancelled")
	s.expectReply("c", "")
	release()
	for range 4 {
		s.reply() // 1, 2, 4 and the refused 5
	}
	r = stats()
	runs, errs := r["runs"].(map[string]any), r["run_errors"].(map[string]any)
	if runs["OK"] != 3.0 || errs["cancelled"] != 1.0 || errs["missing_limit"] != 1.0 || len(errs) != 2 || r["runs_running"] != 0.0 || r["runs_queued"] != 0.0 {
		t.Errorf("after 3 runs OK, one cancelled and one refused: %v", r)
	}
}
