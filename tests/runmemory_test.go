package tests

import (
	"fmt"
	"strings"
	"testing"
)

// A run's memory and its memory_limit are the program's alone: not the box
// init's, not what earlier runs left in the box, so that the same program
// gets the same verdict in the first run of a box and in the hundredth.

// The probe's "memfds 1" writes two 1 MiB memfds, the first closed before
// the second. Under the 1.2 MiB of the judge's report (1258291) it is at the
// edge of its own footprint (1.25–1.30 MiB on this machine kind's kernel,
// cgroup v1: its page tables, libc's pages, its stack and its fork are some
// 250 KiB; about 1.2 MiB on the cgroup v2 guest's): the verdict may be
// either, but it is a verdict, and the box's init lives on. Under a limit
// with room for the kernel's charge batches (64 pages per CPU), it is OK in
// every run, the first of a box as the later ones.
func TestMemfdsFitTheLimitInEveryRunOfABox(t *testing.T) {
	s := startServer(t)
	for _, limit := range []int{1258291, 1600000} {
		for i := 0; i < 4; i++ {
			box := int(num(t, s.ok(obj{"command": "open_box"}), "box"))
			s.installProbe(box)
			for j := 0; j < 5; j++ {
				r := s.ok(with(run("./probe", "memfds", "1"), "box", box, "memory_limit", limit))
				if v := r["limit_verdict"]; v != "OK" && (limit > 1258291 || v != "MemoryLimitExceeded") {
					t.Errorf("limit %d, box %d, run %d: %v, want OK", limit, box, j+1, v)
				}
				if m := num(t, r, "memory"); m < 1<<20 || m > float64(limit) {
					t.Errorf("limit %d, box %d, run %d: memory %.0f, want the program's own, over 1 MiB and within the limit", limit, box, j+1, m)
				}
			}
			s.ok(obj{"command": "close_box", "box": box})
		}
	}
}

// One run leaves 200 MiB in /tmp; the next deletes it to make room, then
// holds 250 MiB under a 64 MiB limit.
func TestPlantedFilesDoNotWidenTheLimit(t *testing.T) {
	s := startServer(t)
	slow := func(req obj) obj { return with(req, "cpu_time_limit", 60.0, "real_time_limit", 120.0) } // emulated machines
	r := s.ok(with(slow(run("sh", "-c", "head -c 200M /dev/zero > /tmp/planted")), "memory_limit", 300<<20))
	expectVerdict(t, r, "OK", code(0))
	r = s.ok(with(slow(run("sh", "-c", "rm /tmp/planted; head -c 250M /dev/zero > /tmp/mine")), "memory_limit", 64<<20))
	expectVerdict(t, r, "MemoryLimitExceeded", nil)
	if m := num(t, r, "memory"); m > 64<<20 || m < 56<<20 {
		t.Errorf("memory: got %.0f, want the peak near the 64 MiB limit", m)
	}
}

// A 700 MB static array under a 512 MiB limit (users' reports of other
// judges): the program is killed, with its peak near the limit.
func TestStaticArrayOverTheLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "static"), "memory_limit", 512<<20, "cpu_time_limit", 60.0, "real_time_limit", 120.0)) // emulated machines are slow
	expectVerdict(t, r, "MemoryLimitExceeded", nil)
	if m := num(t, r, "memory"); m > 512<<20 || m < 480<<20 {
		t.Errorf("memory: got %.0f, want the peak near the 512 MiB limit", m)
	}
}

// The box's init handles each run's request (here with an environment of
// 150 KiB): what it allocates for that is never the program's, which holds
// the environment once, on its stack.
func TestInitMemoryNeverCounts(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	env := obj{}
	for i := 0; i < 5; i++ { // a string may be 128 KiB at most (MAX_ARG_STRLEN)
		env[fmt.Sprint("BIG", i)] = strings.Repeat("x", 30<<10)
	}
	for i := 0; i < 5; i++ {
		r := s.call(with(run("./probe", "exit", "0"), "env", env, "memory_limit", 640<<10))
		if r["error"] != nil || r["limit_verdict"] != "OK" {
			t.Fatalf("run %d: got %v %v, want OK", i+1, r["limit_verdict"], r["error"])
		}
		if m := num(t, r, "memory"); m > 640<<10 {
			t.Errorf("run %d: memory %.0f, over the limit it was held to", i+1, m)
		}
	}
}

// A memory_limit smaller than any program: the run is MemoryLimitExceeded,
// and the box lives on.
func TestMemoryLimitSmallerThanAnyProgram(t *testing.T) {
	s := startServer(t)
	for _, limit := range []int{1, 4096, 65536} {
		expectVerdict(t, s.ok(with(run("/bin/true"), "memory_limit", limit)), "MemoryLimitExceeded", nil)
		expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
	}
}

// A memory_limit too small for the program to be started at all (its fork
// and exec are charged to the run) is the run's MemoryLimitExceeded, in
// every run, not an internal error; the box goes on.
func TestAMemoryLimitTooSmallToStartIsMemoryLimitExceeded(t *testing.T) {
	s := startServer(t)
	for _, limit := range []int{1, 4096, 65536, 131072, 200000, 262144} {
		for i := 0; i < 3; i++ {
			r := s.call(with(run("/bin/true"), "memory_limit", limit))
			if v := r["limit_verdict"]; v != "MemoryLimitExceeded" && v != "OK" {
				t.Errorf("memory_limit %d, run %d: %v, want MemoryLimitExceeded (or OK where it fits)", limit, i+1, r)
			}
		}
	}
	if r := s.call(with(run("/nonexistent"), "memory_limit", 262144)); r["error"] == nil || r["error"].(map[string]any)["code"] != "exec_failed" {
		t.Errorf("a missing program under a small limit: %v, want exec_failed", r)
	}
	expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
}
