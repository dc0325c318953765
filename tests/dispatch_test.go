package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// While a run goes on, sandboxd waits for the judge's next request and for
// the box's init parked in Go's poller: no thread of it sits in a system call
// all along, but for the Go runtime's own waits. A thread in read(2) of stdin
// or ppoll(2) of the init's socket kept the runtime's monitor looking every
// 20 µs whether to take its processor back: a third of sandboxd's samples in
// a run of /bin/true.
func TestSandboxdWaitsParkedDuringARun(t *testing.T) {
	s := startServer(t)
	expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
	s.send(mustJSON(with(run("sleep", "2"), "id", "sleep")))
	time.Sleep(500 * time.Millisecond) // past the run's start, and the first spare box's
	runtimeWaits := map[int]bool{unix.SYS_FUTEX: true, unix.SYS_EPOLL_PWAIT: true, unix.SYS_NANOSLEEP: true}
	inCall := map[string]int{} // "tid syscall" → samples that found it so
	const samples = 5
	for i := 0; i < samples; i++ {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", s.cmd.Process.Pid, task.Name()))
			if err != nil {
				continue
			}
			nr, err := strconv.Atoi(strings.Fields(string(data) + " x")[0]) // "running" when it runs
			if err == nil && nr >= 0 && !runtimeWaits[nr] {
				inCall[fmt.Sprintf("thread %s in system call %d", task.Name(), nr)]++
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for what, n := range inCall {
		if n == samples {
			t.Errorf("while a run goes on, sandboxd has a %s, in each of %d samples over 1 s", what, samples)
		}
	}
	expectVerdict(t, s.recv(), "OK", code(0))
}
