package protocol

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// waitCalls waits until the executor has been called n times with call.
func (s *session) waitCalls(call string, n int) {
	s.t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.exec.mu.Lock()
		got := 0
		for _, c := range s.exec.calls {
			if c == call {
				got++
			}
		}
		s.exec.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the executor was not called %d times with %s: %q", n, call, s.exec.calls)
		}
	}
}

// expectReply reads the next reply and checks its id and error code ("" for a success).
func (s *session) expectReply(id any, wantCode string) map[string]any {
	s.t.Helper()
	r := s.reply()
	if r["id"] != id || code(r) != wantCode {
		s.t.Fatalf("reply %v, want id %v with error code %q", r, id, wantCode)
	}
	return r
}

const runBox0 = `run 0 ["/bin/true"]`

// A running run is killed; the queued one behind it never starts; each is
// answered cancelled before the cancel itself, and the box goes on.
func TestCancelRunningAndQueuedRuns(t *testing.T) {
	s := newSession(t)
	release := s.exec.hold()
	defer release()
	s.send(`{"id":"slow",`+runTrue+`}`, `{"id":"next",`+runTrue+`}`)
	s.waitCalls(runBox0, 1)
	s.send(`{"id":"c1","command":"cancel","target":"next"}`)
	r := s.expectReply("next", "cancelled")
	if msg := r["error"].(map[string]any)["message"]; msg != `request "next" was cancelled by cancel "c1"` {
		t.Errorf("message %q", msg)
	}
	s.expectReply("c1", "")
	s.send(`{"id":"c2","command":"cancel","target":"slow"}`)
	s.expectReply("slow", "cancelled")
	s.expectReply("c2", "")
	release()
	s.send(`{"id":"after",` + runTrue + `}`)
	if r := s.expectReply("after", ""); r["limit_verdict"] != "OK" {
		t.Errorf("run after the cancels: %v", r)
	}
	if want := []string{runBox0, runBox0}; !slices.Equal(s.exec.calls, want) {
		t.Errorf("executor calls %q, want %q: the queued run must never start", s.exec.calls, want)
	}
}

// A run that has its box's turn but waits for a --parallel slot never starts.
func TestCancelARunWaitingForASlot(t *testing.T) {
	s := newSession(t) // --parallel 2
	release := s.exec.hold()
	defer release()
	s.send(`{"id":"o1","command":"open_box"}`, `{"id":"o2","command":"open_box"}`)
	s.reply()
	s.reply()
	s.send(`{"id":0,`+runTrue+`}`, `{"id":1,`+runTrue+`,"box":1}`)
	s.waitCalls(runBox0, 1)
	s.waitCalls(`run 1 ["/bin/true"]`, 1)
	s.send(`{"id":2,` + runTrue + `,"box":2}`)
	s.send(`{"id":"c","command":"cancel","target":2}`)
	r := s.expectReply(2.0, "cancelled")
	if msg := r["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "cancelled") {
		t.Errorf("message %q", msg)
	}
	s.expectReply("c", "")
	release()
	for range 2 {
		if r := s.reply(); r["limit_verdict"] != "OK" {
			t.Errorf("reply %v, want the held runs' OK", r)
		}
	}
	if slices.Contains(s.exec.calls, `run 2 ["/bin/true"]`) {
		t.Errorf("the cancelled run started: %q", s.exec.calls)
	}
}

// groupOfBoxes1And2 is a run_group request of id: /bin/true in boxes 1 and 2.
func groupOfBoxes1And2(id string) string {
	return fmt.Sprintf(`{"id":%q,"command":"run_group","programs":[{"box":1,"argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1},{"box":2,"argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1}]}`, id)
}

// A run_group is ended whether it runs or waits for one of its boxes: the
// boxes it held go on.
func TestCancelRunGroup(t *testing.T) {
	s := newSession(t)
	release := s.exec.hold()
	defer release()
	s.send(`{"command":"open_box"}`, `{"command":"open_box"}`)
	s.reply()
	s.reply()
	// Running.
	s.send(groupOfBoxes1And2("g1"))
	s.waitCalls(`run 1 ["/bin/true"]`, 1)
	s.send(`{"id":"c1","command":"cancel","target":"g1"}`)
	s.expectReply("g1", "cancelled")
	s.expectReply("c1", "")
	// Queued: it holds box 1 and waits for box 2, where a run is held.
	s.send(`{"id":"r2",`+runTrue+`,"box":2}`, groupOfBoxes1And2("g2"))
	s.waitCalls(`run 2 ["/bin/true"]`, 1)
	s.send(`{"id":"c2","command":"cancel","target":"g2"}`)
	s.expectReply("g2", "cancelled")
	s.expectReply("c2", "")
	s.send(`{"id":"p1","command":"box_path","box":1}`) // box 1 is free: at once
	s.expectReply("p1", "")
	release()
	s.expectReply("r2", "")
}

func TestCancelErrors(t *testing.T) {
	s := newSession(t)
	release := s.exec.hold()
	defer release()
	s.send(`{"id":7,`+runTrue+`}`, `{"id":"w","command":"write_file","path":"f","content":"x"}`)
	s.waitCalls(runBox0, 1)
	for _, c := range []struct{ line, code string }{
		{`{"id":1,"command":"cancel"}`, "invalid_argument"},
		{`{"id":1,"command":"cancel","target":null}`, "invalid_argument"},
		{`{"id":1,"command":"cancel","target":{"id":7}}`, "invalid_argument"},
		{`{"id":1,"command":"cancel","target":1.5}`, "invalid_argument"},
		{`{"id":1,"command":"cancel","target":7,"box":0}`, "unknown_field"},
		{`{"id":1,"command":"cancel","target":"7"}`, "no_such_request"}, // the run's id is an integer
		{`{"id":1,"command":"cancel","target":8}`, "no_such_request"},
		{`{"id":1,"command":"cancel","target":1}`, "no_such_request"}, // itself
		{`{"id":1,"command":"cancel","target":"w"}`, "invalid_argument"},
	} {
		s.send(c.line)
		if r := s.reply(); code(r) != c.code || r["id"] != 1.0 {
			t.Errorf("%s: got %v, want %s", c.line, r, c.code)
		}
	}
	release()
	s.expectReply(7.0, "")
	s.reply() // write_file's
	s.send(`{"id":1,"command":"cancel","target":7}`)
	if r := s.expectReply(1.0, "no_such_request"); !strings.Contains(r["error"].(map[string]any)["message"].(string), "answered already") {
		t.Errorf("message of a cancel of an answered run: %v", r)
	}
}

// An id is matched by what it holds, however JSON spells it; every run in
// flight under that id is ended.
func TestCancelMatchesIDsByValue(t *testing.T) {
	s := newSession(t)
	release := s.exec.hold()
	defer release()
	s.send(`{"id":"a",`+runTrue+`}`, `{"id":"\u0061",`+runTrue+`}`)
	s.waitCalls(runBox0, 1)
	s.send(`{"id":"c","command":"cancel","target":"\u0061"}`)
	// The queued one at once, the running one once killed, in either order.
	for range 2 {
		s.expectReply("a", "cancelled")
	}
	s.expectReply("c", "")
}

// Two cancels of one queued run_group, sent at once (a judge that retries):
// the group is answered once, each cancel once, and the server goes on.
func TestCancelRunGroupTwiceAtOnce(t *testing.T) {
	s := newSession(t)
	release := s.exec.hold()
	defer release()
	s.send(`{"command":"open_box"}`, `{"command":"open_box"}`)
	s.reply()
	s.reply()
	s.send(`{"id":"r2",` + runTrue + `,"box":2}`)
	s.waitCalls(`run 2 ["/bin/true"]`, 1)
	const groups = 50
	for i := range groups {
		s.send(groupOfBoxes1And2(fmt.Sprint("g", i)))
	}
	for i := range groups {
		s.send(fmt.Sprintf(`{"id":"c%da","command":"cancel","target":"g%d"}`, i, i), fmt.Sprintf(`{"id":"c%db","command":"cancel","target":"g%d"}`, i, i))
	}
	replies := map[any]int{}
	for range 3 * groups {
		replies[s.reply()["id"]]++
	}
	for i := range groups {
		for _, id := range []string{fmt.Sprintf("g%d", i), fmt.Sprintf("c%da", i), fmt.Sprintf("c%db", i)} {
			if replies[id] != 1 {
				t.Errorf("%s answered %d times, want once", id, replies[id])
			}
		}
	}
	release()
	s.expectReply("r2", "")
}
