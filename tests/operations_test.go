package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitRunning waits until stats says n runs hold a slot.
func (s *server) waitRunning(n int) {
	s.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if r := s.ok(obj{"command": "stats"}); r["runs_running"] == float64(n) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d runs did not start", n)
		}
	}
}

// waitForFile waits until a program has made the file at a host path.
func (s *server) waitForFile(path string) {
	s.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no program made %s", path)
		}
	}
}

// expectID reads the next reply and checks its id.
func (s *server) expectID(id any) obj {
	s.t.Helper()
	r := s.recv()
	if r["id"] != id {
		s.t.Fatalf("reply %v, want the reply to %v", r, id)
	}
	return r
}

// A sleeping run is killed by cancel, the run queued behind it never
// starts, each is answered cancelled before its cancel, and the box runs
// again, its files kept.
func TestCancelASleepingRunAndTheRunQueuedBehindIt(t *testing.T) {
	s := startServer(t)
	s.ok(obj{"command": "write_file", "path": "kept", "content": "x"})
	s.send(mustJSON(with(run("sh", "-c", "echo started > log; sleep 60"), "id", "sleep", "real_time_limit", 120.0)))
	// Running is not yet sleeping: the run holds its slot before the
	// program executes, and a cancel then kills it before it writes.
	s.waitForFile(filepath.Join(s.boxDir(0), "space", "log"))
	s.send(mustJSON(with(run("sh", "-c", "echo queued >> log"), "id", "queued")))
	s.send(mustJSON(obj{"command": "cancel", "id": "c1", "target": "queued"}))
	expectError(t, s.expectID("queued"), "cancelled")
	s.expectID("c1")
	start := time.Now()
	s.send(mustJSON(obj{"command": "cancel", "id": "c2", "target": "sleep"}))
	expectError(t, s.expectID("sleep"), "cancelled")
	if r := s.expectID("c2"); len(r) != 1 {
		t.Errorf("cancel's reply %v, want {} with its id", r)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the sleeping run took %v to end", took)
	}
	expectVerdict(t, s.ok(run("sh", "-c", "cat kept log; ps -e -o comm= | grep -c sleep")), "OK", code(1))
	if got := s.ok(obj{"command": "read_file", "path": "log"})["content"]; got != "started\n" {
		t.Errorf("log %q: the queued run must never have started", got)
	}
	r := s.ok(obj{"command": "stats"})
	if errs := r["run_errors"].(map[string]any); errs["cancelled"] != 2.0 || r["runs_running"] != 0.0 || r["runs_queued"] != 0.0 {
		t.Errorf("stats after two cancels: %v", r)
	}
	expectError(t, s.call(obj{"command": "cancel", "target": "sleep"}), "no_such_request")
}

// A run whose reply came is no request in flight: a cancel sent on that
// reply is no_such_request, never a {} for a run that ended by itself.
func TestCancelOfARunJustAnsweredIsNoSuchRequest(t *testing.T) {
	s := startServer(t)
	for i := range 200 {
		expectVerdict(t, s.ok(with(run("true"), "id", i)), "OK", code(0))
		if r := s.call(obj{"command": "cancel", "id": "c", "target": i}); r["error"] == nil || r["error"].(obj)["code"] != "no_such_request" {
			t.Fatalf("cancel of run %d, answered: %v, want no_such_request", i, r)
		}
	}
}

// A run_group is ended as a whole: every program is killed, both boxes run again.
func TestCancelARunGroup(t *testing.T) {
	s := startServer(t)
	for range 2 {
		s.ok(obj{"command": "open_box"})
	}
	prog := func(box int) obj {
		return obj{"box": box, "argv": []string{"sh", "-c", "cat; sleep 60"}, "cpu_time_limit": 5.0, "processes_limit": 4, "real_time_limit": 120.0}
	}
	s.send(mustJSON(obj{"command": "run_group", "id": "g", "programs": []obj{prog(1), prog(2)},
		"pipes": []obj{{"from": obj{"program": 0, "fd": 1}, "to": obj{"program": 1, "fd": 0}}, {"from": obj{"program": 1, "fd": 1}, "to": obj{"program": 0, "fd": 0}}}}))
	s.waitRunning(1)
	s.send(mustJSON(obj{"command": "cancel", "id": "c", "target": "g"}))
	expectError(t, s.expectID("g"), "cancelled")
	s.expectID("c")
	for _, box := range []int{1, 2} {
		expectVerdict(t, s.ok(with(run("sh", "-c", "exit 4"), "box", box)), "OK", code(4))
	}
}

// stats tells the counts of this instance, its backend and its cgroups.
func TestStatsOfTheNativeBackend(t *testing.T) {
	s := startServer(t, "--parallel", "3")
	s.ok(obj{"command": "open_box"})
	s.ok(run("sh", "-c", "exit 0"))
	s.call(with(run("sh", "-c", "kill -9 $$")))
	s.call(run("/nonexistent"))
	r := s.ok(obj{"command": "stats"})
	runs, errs := r["runs"].(map[string]any), r["run_errors"].(map[string]any)
	if r["executor"] != "native" || r["boxes_open"] != 2.0 || r["parallel"] != 3.0 || runs["OK"] != 1.0 || runs["Signaled"] != 1.0 || errs["exec_failed"] != 1.0 {
		t.Errorf("stats: %v", r)
	}
	if up := num(t, r, "uptime"); up <= 0 || up > 600 {
		t.Errorf("uptime %v", up)
	}
	cg := r["cgroup"].(map[string]any)
	groups, _ := cg["groups"].([]any)
	found := cgroupsOf(s.stateDir)
	if len(groups) == 0 || len(groups) != len(found) {
		t.Fatalf("cgroup %v: want the instance's groups, %v", cg, found)
	}
	for _, g := range groups {
		if !strings.HasSuffix(g.(string), "/"+instanceCgroup(s.stateDir)) {
			t.Errorf("group %v is not the instance's", g)
		}
	}
	if mode := cg["mode"]; (mode == "v2") != (len(found) == 1) || (mode != "v1" && mode != "v2") {
		t.Errorf("cgroup mode %v with groups %v", mode, found)
	}
}

// In a cgroup held to one CPU's worth of time (a container's limits.cpu, a
// unit's CPUQuota=), --parallel defaults to 1, not to the host's CPUs:
// runs at once beyond the quota throttle each other's real time.
func TestParallelDefaultsToTheCgroupsCPUQuota(t *testing.T) {
	dir, quota := "/sys/fs/cgroup/cpu/sandboxd-quota-test", "cpu.cfs_quota_us"
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		dir, quota = "/sys/fs/cgroup/sandboxd-quota-test", "cpu.max"
		if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+cpu"), 0o644); err != nil {
			t.Fatalf("enable the cpu controller: %v", err)
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(filepath.Join(dir, "leaf")) // cgroup v2: sandboxd's leaf stays
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the test's cgroup: %v", err)
		}
	})
	// One CPU: on v1 the quota alone, on v2 "quota period".
	one := "100000"
	if quota == "cpu.max" {
		one = "100000 100000"
	}
	if err := os.WriteFile(filepath.Join(dir, quota), []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newServer(t, t.TempDir())
	// sandboxd starts in the cgroup: the shell moves itself there, then execs it.
	s.cmd = exec.Command("sh", append([]string{"-c", `echo $$ > "$0/cgroup.procs" && exec "$@"`, dir, sandboxdBin}, baseArgs(s.stateDir, s.uidBase)...)...)
	s.start()
	if r := s.ok(obj{"command": "stats"}); r["parallel"] != 1.0 {
		t.Errorf("stats in a cgroup of one CPU's quota: %v, want parallel 1", r)
	}
	s.wait()
}
