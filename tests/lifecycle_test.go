package tests

import (
	"syscall"
	"testing"
	"time"
)

// SIGTERM: the run in flight is killed and answered with an error, the
// server cleans up and exits 0.
func TestSIGTERMKillsRunsAndCleansUp(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	s.send(mustJSON(with(run("./probe", "pause"), "id", "long", "real_time_limit", 60.0)))
	time.Sleep(300 * time.Millisecond) // let the run start
	s.cmd.Process.Signal(syscall.SIGTERM)
	r := s.recv()
	if r["id"] != "long" {
		t.Fatalf("reply to the run in flight: %v", r)
	}
	expectError(t, r, "shutting_down")
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d after SIGTERM (stderr: %s)", code, s.stderr.String())
	}
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// Ctrl-C in a terminal signals the whole process group: sandboxd shuts down
// in order, and its boxes do not die under the run first.
func TestSIGINTToTheProcessGroup(t *testing.T) {
	s := newServer(t, t.TempDir())
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.start()
	s.installProbe(0)
	s.send(mustJSON(with(run("./probe", "pause"), "id", "long", "real_time_limit", 60.0)))
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGINT)
	expectError(t, s.recv(), "shutting_down")
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d after SIGINT to the group (stderr: %s)", code, s.stderr.String())
	}
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// kill -9: no sandboxed process outlives sandboxd, and the next start on
// the same state directory removes what it left.
func TestKill9LeavesNoProcessAndNextStartCleansUp(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	s.ok(obj{"command": "open_box"})
	s.send(mustJSON(with(run("./probe", "daemon"), "id", 1)))
	s.recv()
	s.send(mustJSON(with(run("./probe", "pause"), "id", 2, "real_time_limit", 60.0)))
	time.Sleep(300 * time.Millisecond)
	s.cmd.Process.Kill()
	s.cmd.Wait()
	s.exited = true
	deadline := time.Now().Add(5 * time.Second)
	for {
		var procs []string
		for _, l := range leftovers(s.stateDir) {
			if l[:7] == "process" {
				procs = append(procs, l)
			}
		}
		if len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes outlived sandboxd: %v", procs)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A new sandboxd on the same state dir starts clean and works.
	next := startServerOn(t, s.stateDir)
	next.installProbe(0)
	expectVerdict(t, next.ok(run("./probe", "exit", "0")), "OK", code(0))
	if code := next.wait(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind after the second instance: %v", left)
	}
}
