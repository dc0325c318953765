package tests

import (
	"testing"
	"time"
)

// Pipelined requests on one box run in arrival order; requests on two boxes
// run in parallel, and replies come as each finishes, matched by id.
func TestPipelinedRequests(t *testing.T) {
	s := startServer(t, "--parallel", "2")
	s.ok(obj{"command": "open_box"})
	start := time.Now()
	// Box 0: write, run, read, without waiting: each needs the one before.
	s.send(mustJSON(obj{"command": "write_file", "id": "w", "path": "in.txt", "content": "ordered\n"}))
	s.send(mustJSON(with(run("sh", "-c", "sleep 0.5; cat in.txt"), "id", "r0", "stdout", "out.txt")))
	s.send(mustJSON(obj{"command": "read_file", "id": "read", "path": "out.txt"}))
	// Box 1: a run as long, at the same time.
	s.send(mustJSON(with(run("sleep", "0.5"), "id", "r1", "box", 1)))
	replies := map[any]obj{}
	var order []any
	for i := 0; i < 4; i++ {
		r := s.recv()
		replies[r["id"]] = r
		order = append(order, r["id"])
	}
	elapsed := time.Since(start)
	if got := replies["read"]["content"]; got != "ordered\n" {
		t.Errorf("read after write and run on one box: %v (replies in order %v)", replies["read"], order)
	}
	for _, id := range []string{"r0", "r1"} {
		expectVerdict(t, replies[id], "OK", code(0))
	}
	if !functionalOnly && elapsed > 900*time.Millisecond {
		t.Errorf("two 0.5 s runs on two boxes took %v: they did not run in parallel", elapsed)
	}
}
