package protocol

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// session serves the protocol against a fake executor, in process: lines
// go in one at a time, replies are read as they come.
type session struct {
	t    *testing.T
	exec *fakeExecutor
	in   *io.PipeWriter
	out  *bufio.Reader
	done chan error
}

func newSession(t *testing.T) *session {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{t: t, exec: newFakeExecutor(), in: inW, out: bufio.NewReader(outR), done: make(chan error, 1)}
	srv := &Server{Exec: s.exec, Parallel: 2, Version: "test"}
	go func() {
		s.done <- srv.Serve(context.Background(), inR, outW)
		outW.Close()
	}()
	t.Cleanup(func() {
		inW.Close()
		io.Copy(io.Discard, s.out)
		if err := <-s.done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func (s *session) send(lines ...string) {
	s.t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(s.in, l+"\n"); err != nil {
			s.t.Fatal(err)
		}
	}
}

// reply reads the next reply line: exactly one JSON object, whose id (if
// any) comes first.
func (s *session) reply() map[string]any {
	s.t.Helper()
	line, err := s.out.ReadString('\n')
	if err != nil {
		s.t.Fatalf("read reply: %v (got %q)", err, line)
	}
	if strings.Count(line, "\n") != 1 {
		s.t.Fatalf("reply is not one line: %q", line)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		s.t.Fatalf("reply is not a JSON object: %q", line)
	}
	if _, ok := r["id"]; ok && !strings.HasPrefix(line, `{"id":`) {
		s.t.Errorf("the id is not first: %q", line)
	}
	return r
}

func code(r map[string]any) string {
	e, _ := r["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

const runTrue = `"command":"run","argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1`

// Each request is decoded strictly, once, and refused with its code.
func TestDecoding(t *testing.T) {
	s := newSession(t)
	for _, c := range []struct{ line, code string }{
		{`{"id":1,` + runTrue + `,"cpu_limit":1}`, "unknown_field"},
		{`{"id":1,` + runTrue + `,"CPU_TIME_LIMIT":1}`, "unknown_field"},
		{`{"id":1,"command":"run","argv":["/bin/true"],"cpu_time_limit":"1","processes_limit":1}`, "invalid_argument"},
		{`{"id":1,"command":"run","argv":["/bin/true"],"processes_limit":1}`, "missing_limit"},
		{`{"id":1,"command":"run","argv":["/bin/true",null],"cpu_time_limit":1,"processes_limit":1}`, "invalid_argument"},
		{`{"id":1,"command":"close_box"}`, "invalid_argument"},
		{`{"id":1,"command":"version","box":0}`, "unknown_field"},
		{`{"id":1,"command":"read_file","path":"a","path_base64":"YQ=="}`, "invalid_argument"},
		{`{"id":1,"command":"remove_runtime","name":"../x"}`, "invalid_argument"},
		{`{"id":1,"command":"nope"}`, "unknown_command"},
		{`{"id":1}`, "invalid_argument"},
		{`{"id":1,`, "bad_json"},
		{`{"id":1,"command":"run","argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1,"box":7}`, "no_such_box"},
	} {
		s.send(c.line)
		if r := s.reply(); code(r) != c.code {
			t.Errorf("%s: got %v, want %s", c.line, r, c.code)
		}
	}
	if slices.ContainsFunc(s.exec.calls, func(c string) bool { return strings.HasPrefix(c, "run") }) {
		t.Errorf("a refused run reached the executor: %q", s.exec.calls)
	}
}

// Each command reaches the executor as its request says, and its reply
// echoes the request's id first: a string, an integer, or none.
func TestDispatchAndIDs(t *testing.T) {
	s := newSession(t)
	s.send(`{"id":"a",` + runTrue + `}`)
	if r := s.reply(); r["id"] != "a" || r["limit_verdict"] != "OK" || r["exit_code"] != 0.0 {
		t.Errorf("run: %v", r)
	}
	s.send(`{"id":7,"command":"open_box"}`)
	if r := s.reply(); r["id"] != 7.0 || r["box"] != 1.0 {
		t.Errorf("open_box: %v", r)
	}
	s.send(`{"command":"box_path","box":1}`)
	if r := s.reply(); r["path"] != "/nonexistent/sandboxd-fake/1/space" || r["id"] != nil {
		t.Errorf("box_path without id: %v", r)
	}
	s.send(`{"id":8,"command":"version"}`)
	if r := s.reply(); r["version"] != "test" || r["protocol"] != 1.0 {
		t.Errorf("version: %v", r)
	}
	// Two boxes: their replies, and the executor's calls, come in either order.
	s.send(`{"id":9,"command":"close_box","box":1}`, `{"id":10,"command":"reset_box"}`)
	ids := map[any]bool{}
	for range 2 {
		r := s.reply()
		if len(r) != 1 {
			t.Errorf("reply %v: want only an id", r)
		}
		ids[r["id"]] = true
	}
	if !ids[9.0] || !ids[10.0] {
		t.Errorf("replies to ids %v, want 9 and 10", ids)
	}
	want := []string{`run 0 ["/bin/true"]`, "close_box 1", "reset_box 0"}
	calls := slices.Clone(s.exec.calls)
	slices.Sort(calls[min(1, len(calls)):])
	if !slices.Equal(calls, want) {
		t.Errorf("executor calls %q, want %q", s.exec.calls, want)
	}
}

// Requests of one box run one at a time, in order; other requests do not
// wait for them. close_box ends the runs of its box sent before it.
func TestPerBoxOrder(t *testing.T) {
	s := newSession(t)
	release := s.exec.hold()
	defer release()
	s.send(`{"id":1,` + runTrue + `}`)
	s.send(`{"id":2,"command":"write_file","path":"f","content":"x"}`) // box 0: after the run
	s.send(`{"id":3,"command":"version"}`)                             // no box: at once
	if r := s.reply(); r["id"] != 3.0 {
		t.Fatalf("first reply %v, want version's (id 3) while box 0 runs", r)
	}
	release()
	if r := s.reply(); r["id"] != 1.0 || r["limit_verdict"] != "OK" {
		t.Errorf("second reply %v, want the run's (id 1)", r)
	}
	if r := s.reply(); r["id"] != 2.0 || code(r) == "" {
		t.Errorf("third reply %v, want write_file's (id 2), an error as /space is nowhere", r)
	}

	s.send(`{"id":4,"command":"open_box"}`)
	if r := s.reply(); r["box"] != 1.0 {
		t.Fatalf("open_box: %v", r)
	}
	s.exec.hold()
	s.send(`{"id":5,` + runTrue + `,"box":1}`)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.exec.mu.Lock()
		started := slices.Contains(s.exec.calls, `run 1 ["/bin/true"]`)
		s.exec.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run of box 1 did not start")
		}
	}
	s.send(`{"id":6,`+runTrue+`,"box":1}`, `{"id":7,"command":"close_box","box":1}`)
	// The queued run is answered at once, the running one once killed; the
	// close after both.
	ended := map[float64]bool{}
	for range 2 {
		if r := s.reply(); code(r) == "box_closed" {
			ended[r["id"].(float64)] = true
		} else {
			t.Errorf("reply %v, want box_closed for run 5 or 6", r)
		}
	}
	if !ended[5] || !ended[6] {
		t.Errorf("runs ended: %v, want 5 and 6", ended)
	}
	if r := s.reply(); r["id"] != 7.0 || code(r) != "" {
		t.Errorf("reply %v, want close_box's (id 7), a success", r)
	}
}
