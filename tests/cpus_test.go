package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// --cpus pins runs to CPUs of their own: no two concurrent runs share one,
// and a program cannot move itself off its own.

// pinReport is what `probe affinity` printed: the CPUs it was allowed, what
// each attempt to move got, the CPUs it was allowed after them and those it
// ran on, and when it ran (CLOCK_MONOTONIC, the same clock in every box).
type pinReport struct {
	allowed, after, ran string
	moves               map[string]string // "0" or "all" → "ok" or the errno's name
	from, to            float64
}

func parsePinReport(t *testing.T, out string) pinReport {
	t.Helper()
	r := pinReport{moves: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		key, value, _ := strings.Cut(line, " ")
		switch key {
		case "allowed":
			r.allowed = value
		case "after":
			r.after = value
		case "ran":
			r.ran = value
		case "move":
			cpu, got, _ := strings.Cut(value, ": ")
			r.moves[cpu] = got
		case "span":
			from, to, _ := strings.Cut(value, " ")
			r.from, _ = strconv.ParseFloat(from, 64)
			r.to, _ = strconv.ParseFloat(to, 64)
		default:
			t.Fatalf("probe affinity printed %q", out)
		}
	}
	return r
}

func (r pinReport) overlaps(o pinReport) bool { return r.from < o.to && o.from < r.to }

// pinned checks that a program was held to one CPU of cpus and could not
// leave it, and returns that CPU.
func (r pinReport) pinned(t *testing.T, what string, cpus []int) string {
	t.Helper()
	own, err := strconv.Atoi(r.allowed)
	if err != nil || !containsInt(cpus, own) {
		t.Errorf("%s: allowed CPUs %q, want one of %v", what, r.allowed, cpus)
	}
	for cpu, got := range r.moves {
		if cpu != "all" && got != "EINVAL" {
			t.Errorf("%s: sched_setaffinity to CPU %s: %s, want EINVAL", what, cpu, got)
		}
	}
	if r.after != r.allowed || r.ran != r.allowed {
		t.Errorf("%s: after trying to move (%v), allowed %q and ran on %q, want %q only", what, r.moves, r.after, r.ran, r.allowed)
	}
	return r.allowed
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// hostCPUs are the CPUs this test may give sandboxd: those it may run on.
func hostCPUs(t *testing.T) []int {
	t.Helper()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		t.Fatal(err)
	}
	var cpus []int
	for c := 0; c < 1024; c++ {
		if set.IsSet(c) {
			cpus = append(cpus, c)
		}
	}
	return cpus
}

func cpuListArg(cpus []int) string {
	s := make([]string, len(cpus))
	for i, c := range cpus {
		s[i] = strconv.Itoa(c)
	}
	return strings.Join(s, ",")
}

func affinityRun(box int, spin string) obj {
	return with(run("./probe", "affinity", spin), "box", box, "stdout", "affinity.txt")
}

// readPinReport reads the report of the last affinityRun in box.
func readPinReport(s *server, box int) pinReport {
	s.t.Helper()
	return parsePinReport(s.t, s.ok(obj{"command": "read_file", "box": box, "path": "affinity.txt"})["content"].(string))
}

// sendAll sends requests at once, with ids 0.., and returns the replies by id.
func sendAll(s *server, reqs ...obj) []obj {
	s.t.Helper()
	for i, r := range reqs {
		s.send(mustJSON(with(r, "id", i)))
	}
	got := make([]obj, len(reqs))
	for range reqs {
		r := s.recv()
		got[int(r["id"].(float64))] = r
	}
	return got
}

func TestCPUsConcurrentRunsGetCPUsOfTheirOwn(t *testing.T) {
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		t.Skipf("this host gives the test %d CPU: two concurrent pinned runs need two", len(cpus))
	}
	cpus = cpus[:2]
	s := startServer(t, "--cpus", cpuListArg(cpus))
	boxes := openBoxes(s, 2)
	for _, b := range boxes {
		s.installProbe(b)
	}
	for _, r := range sendAll(s, affinityRun(boxes[0], "0.5"), affinityRun(boxes[1], "0.5")) {
		expectVerdict(t, r, "OK", code(0))
	}
	a, b := readPinReport(s, boxes[0]), readPinReport(s, boxes[1])
	if !a.overlaps(b) {
		t.Fatalf("the two runs did not run at once (%.3f-%.3f, %.3f-%.3f): the test shows nothing", a.from, a.to, b.from, b.to)
	}
	if ca, cb := a.pinned(t, "box a", cpus), b.pinned(t, "box b", cpus); ca == cb {
		t.Errorf("two concurrent runs share CPU %s", ca)
	}
}

func TestCPUsOneCPUSerializesRuns(t *testing.T) {
	cpus := hostCPUs(t)
	one := cpus[len(cpus)-1:]
	s := startServer(t, "--cpus", cpuListArg(one))
	boxes := openBoxes(s, 2)
	for _, b := range boxes {
		s.installProbe(b)
	}
	for _, r := range sendAll(s, affinityRun(boxes[0], "0.3"), affinityRun(boxes[1], "0.3")) {
		expectVerdict(t, r, "OK", code(0))
	}
	a, b := readPinReport(s, boxes[0]), readPinReport(s, boxes[1])
	a.pinned(t, "box a", one)
	b.pinned(t, "box b", one)
	if a.overlaps(b) {
		t.Errorf("with --cpus %d, two runs ran at once: %.3f-%.3f and %.3f-%.3f", one[0], a.from, a.to, b.from, b.to)
	}
}

func TestCPUsRunGroup(t *testing.T) {
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		t.Skipf("this host gives the test %d CPU: a group of two pinned programs needs two", len(cpus))
	}
	cpus = cpus[:2]
	s := startServer(t, "--cpus", cpuListArg(cpus))
	boxes := openBoxes(s, 3)
	for _, b := range boxes {
		s.installProbe(b)
	}
	member := func(box int, spin string) obj {
		return with(program(box, "./probe", "affinity", spin), "stdout", "affinity.txt")
	}
	group := obj{"command": "run_group", "programs": []obj{member(boxes[0], "0.2"), member(boxes[1], "0.2")}}

	// Each program of a group has a CPU of its own.
	r := s.ok(group)
	for _, res := range r["results"].([]any) {
		expectVerdict(t, res.(obj), "OK", code(0))
	}
	a, b := readPinReport(s, boxes[0]), readPinReport(s, boxes[1])
	if ca, cb := a.pinned(t, "program 0", cpus), b.pinned(t, "program 1", cpus); ca == cb {
		t.Errorf("two programs of a group share CPU %s", ca)
	}

	// A group that needs more CPUs than there are can never run.
	three := obj{"command": "run_group", "programs": []obj{member(boxes[0], "0"), member(boxes[1], "0"), member(boxes[2], "0")}}
	refused := s.call(three)
	expectError(t, refused, "invalid_argument")
	if msg := refused["error"].(obj)["message"].(string); !strings.Contains(msg, "needs 3 CPUs") || !strings.Contains(msg, "--cpus gives 2") {
		t.Errorf("a group of 3 on 2 CPUs: %q, want it to say it needs 3 CPUs and --cpus gives 2", msg)
	}

	// A group waits for CPUs that a run holds: nothing of the two runs at once.
	got := sendAll(s, affinityRun(boxes[2], "0.4"), group)
	expectVerdict(t, got[0], "OK", code(0))
	if _, bad := got[1]["error"]; bad {
		t.Fatalf("the group: %v", got[1])
	}
	alone := readPinReport(s, boxes[2])
	alone.pinned(t, "the run", cpus)
	for i, box := range boxes[:2] {
		p := readPinReport(s, box)
		p.pinned(t, fmt.Sprintf("program %d", i), cpus)
		if p.overlaps(alone) {
			t.Errorf("program %d of a group ran (%.3f-%.3f) while a run held one of the 2 CPUs (%.3f-%.3f)", i, p.from, p.to, alone.from, alone.to)
		}
	}
}

func TestCPUsBadListsRefused(t *testing.T) {
	possible, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		t.Fatal(err)
	}
	_, last, _ := strings.Cut(strings.TrimSpace(string(possible)), "-")
	n, _ := strconv.Atoi(last)
	absent := strconv.Itoa(n + 1)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--cpus", "9999"}, "CPU 9999 is past the kernel's bound"},
		{[]string{"--cpus", "a-b"}, `"a-b" in CPU list "a-b": not a CPU number`},
		{[]string{"--cpus", "1-0"}, "the range goes down"},
		{[]string{"--cpus", "0,0"}, "names CPU 0 twice"},
		{[]string{"--cpus", ","}, "not a CPU number"},
		{[]string{"--cpus", "0," + absent}, "CPU " + absent + " not online"},
		{[]string{"--cpus", "0", "--parallel", "2"}, "--parallel 2 is more than the 1 CPUs of --cpus 0"},
		{[]string{"--cpus", "0", "--executor", "isolate"}, "--cpus is for the native executor"},
	} {
		s := newServer(t, t.TempDir(), c.args...)
		s.start()
		done := make(chan int, 1)
		go func() { done <- s.wait() }()
		select {
		case exit := <-done:
			if exit == 0 || !strings.Contains(s.stderr.String(), c.want) {
				t.Errorf("sandboxd %v: exit %d, stderr %q; want it refused, saying %q", c.args, exit, s.stderr.String(), c.want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("sandboxd %v did not refuse to start", c.args)
		}
	}
}

// checkWith runs `sandboxd check` with the flags of a test's sandboxd and args.
func checkWith(t *testing.T, args ...string) ([]byte, error) {
	s := newServer(t, t.TempDir(), args...)
	return exec.Command(sandboxdBin, append([]string{"check"}, s.cmd.Args[1:]...)...).CombinedOutput()
}

// check tells whether runs can be pinned to the list, and warns of what makes
// timing unfair.
func TestCheckCPUs(t *testing.T) {
	out, err := checkWith(t, "--cpus", "0")
	if err != nil || !strings.Contains(string(out), "ok   cpus        runs pinned to 0") {
		t.Errorf("check --cpus 0 (%v):\n%s", err, out)
	}
	for _, name := range []string{"smt", "governor", "turbo", "swap"} {
		if !strings.Contains(string(out), " "+name+" ") {
			t.Errorf("check --cpus 0 says nothing of %s:\n%s", name, out)
		}
	}
	out, err = checkWith(t, "--cpus", "8191")
	if err == nil || !strings.Contains(string(out), "FAIL cpus        --cpus: CPU 8191 not online") {
		t.Errorf("check --cpus 8191 (%v):\n%s", err, out)
	}
}

// On cgroup v2, --cpus needs the cpuset controller where sandboxd's groups
// go, and CPUs of that cgroup's cpuset: sandboxd, started alone in a cgroup
// of its own, refuses to start without either, saying what is missing where.
func TestCPUsCgroupV2Delegation(t *testing.T) {
	base := cgroupBase(t)
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		t.Skipf("this host gives the test %d CPU: a CPU outside the cpuset needs two", len(cpus))
	}
	// parent offers its children memory and pids, not cpuset.
	parent := filepath.Join(base, "cpus-"+strconv.Itoa(os.Getpid()))
	own := filepath.Join(parent, "own")
	for _, d := range []string{parent, own} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{filepath.Join(own, "leaf"), own, parent} {
			if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
				t.Errorf("remove %s: %v", d, err)
			}
		}
	})
	control := func(dir, file, value string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0); err != nil {
			t.Fatalf("%s/%s: %v", dir, file, err)
		}
	}
	control(base, "cgroup.subtree_control", "+memory +pids +cpuset")
	control(parent, "cgroup.subtree_control", "+memory +pids")
	startIn := func(args ...string) *server {
		dir, err := os.Open(own)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		s := newServer(t, t.TempDir(), args...)
		s.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
		s.start()
		return s
	}
	refused := func(want string, args ...string) {
		t.Helper()
		s := startIn(args...)
		if exit := s.wait(); exit == 0 || !strings.Contains(s.stderr.String(), want) {
			t.Errorf("sandboxd %v in %s: exit %d, stderr %q; want it refused, saying %q", args, own, exit, s.stderr.String(), want)
		}
	}
	one, other := strconv.Itoa(cpus[0]), strconv.Itoa(cpus[1])
	refused(fmt.Sprintf("cgroup v2 controllers cpuset are not delegated to %s (its cgroup.controllers: \\\"memory pids\\\"): enable them in %s/cgroup.subtree_control", own, parent), "--cpus", one)

	control(parent, "cgroup.subtree_control", "+cpuset")
	control(own, "cpuset.cpus", one)
	refused(fmt.Sprintf("CPU %s outside the cpuset where sandboxd's groups go (%s/cpuset.cpus.effective: %s)", other, own, one), "--cpus", other)

	s := startIn("--cpus", one)
	s.installProbe(0)
	expectVerdict(t, s.ok(affinityRun(0, "0")), "OK", code(0))
	readPinReport(s, 0).pinned(t, "a run", cpus[:1])
	if c := s.wait(); c != 0 {
		t.Errorf("exit code %d (stderr: %s)", c, s.stderr.String())
	}
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// stats tells the CPUs of --cpus and how many runs hold now, and names the
// instance's cpuset group among its groups.
func TestCPUsStats(t *testing.T) {
	cpus := hostCPUs(t)[:1]
	s := startServer(t, "--cpus", cpuListArg(cpus))
	s.installProbe(0)
	inUse := func() float64 {
		st := s.ok(obj{"command": "stats"})
		c, ok := st["cpus"].(obj)
		if !ok || c["list"] != cpuListArg(cpus) {
			t.Fatalf("stats with --cpus %s: cpus is %v", cpuListArg(cpus), st["cpus"])
		}
		return c["in_use"].(float64)
	}
	if n := inUse(); n != 0 {
		t.Errorf("no run, yet %v CPUs in use", n)
	}
	s.send(mustJSON(with(run("./probe", "spin-pause", "0"), "id", "spin", "real_time_limit", 3.0)))
	deadline := time.Now().Add(2 * time.Second)
	for inUse() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("a run in flight, and no CPU in use")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := s.recv(); r["id"] != "spin" || r["limit_verdict"] != "RealTimeLimitExceeded" {
		t.Fatalf("the run: %v", r)
	}
	if n := inUse(); n != 0 {
		t.Errorf("the run ended, yet %v CPUs in use", n)
	}
	cg := s.ok(obj{"command": "stats"})["cgroup"].(obj)
	if groups := cg["groups"].([]any); cg["mode"] == "v1" && !slices.Contains(groups, any(filepath.Join("/sys/fs/cgroup/cpuset", instanceCgroup(s.stateDir)))) {
		t.Errorf("stats on cgroup v1 with --cpus: groups %v, without the cpuset one", groups)
	}
	s.wait()
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	// Without --cpus, no cpus.
	if st := startServer(t).ok(obj{"command": "stats"}); st["cpus"] != nil {
		t.Errorf("stats without --cpus: cpus is %v", st["cpus"])
	}
}
