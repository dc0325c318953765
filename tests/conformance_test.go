package tests

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The conformance cases of the seed spec, run through the protocol against
// real boxes. Timing tolerances are stated per case; SANDBOXD_FUNCTIONAL_ONLY
// keeps the verdicts and drops the timing checks (for emulated machines).

func TestExitCode(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(run("./probe", "exit", "123"))
	expectVerdict(t, r, "OK", code(123))
	for _, k := range []string{"real_time", "cpu_time", "idleness_time", "memory"} {
		if num(t, r, k) < 0 {
			t.Errorf("%s is negative: %v", k, r)
		}
	}
}

// argv reaches the program as given, as execvp passes it: a bare name is
// found in PATH and stays argv[0]; a script gets the path it was found at.
func TestArgvIsPassedAsGiven(t *testing.T) {
	s := startServer(t)
	s.ok(obj{"command": "write_file", "path": "bin/show.sh", "content": "#!/bin/sh\necho \"$0 $1\"\n", "mode": 0o755})
	for _, c := range []struct {
		argv []string
		want string
	}{
		{[]string{"sh", "-c", "echo $0"}, "sh\n"},
		{[]string{"/bin/sh", "-c", "echo $0"}, "/bin/sh\n"},
		{[]string{"show.sh", "a b"}, "/space/bin/show.sh a b\n"},
		{[]string{"./bin/show.sh", "x"}, "./bin/show.sh x\n"},
	} {
		r := s.ok(with(run(c.argv...), "env", obj{"PATH": "/space/bin:/usr/bin:/bin"}, "stdout", "argv.txt"))
		expectVerdict(t, r, "OK", code(0))
		if got := s.ok(obj{"command": "read_file", "path": "argv.txt"})["content"]; got != c.want {
			t.Errorf("argv %q: the program saw %q, want %q", c.argv, got, c.want)
		}
	}
}

func TestSignals(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	for _, c := range []struct {
		behaviour string
		signal    int
	}{{"segv", 11}, {"abort", 6}, {"sigterm", 15}} {
		t.Run(c.behaviour, func(t *testing.T) {
			r := s.ok(run("./probe", c.behaviour))
			expectVerdict(t, r, "Signaled", code(-c.signal))
		})
	}
}

// A time limit that was hit: the metric it limits is at least the limit and
// at most loadSlack past it (times the CPUs it is burnt on, for CPU time).

func TestCPUTimeLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "spin", "0"), "cpu_time_limit", 0.5))
	expectVerdict(t, r, "CPUTimeLimitExceeded", nil)
	if !functionalOnly {
		between(t, "cpu_time", num(t, r, "cpu_time"), 0.5, 0.5+loadSlack)
	}
}

// The CPU time of a run is its threads' together. How long they take to burn
// it depends on what else the machine runs: the probe's main thread tells
// its own share instead.
func TestCPUTimeLimitCountsEveryThread(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "threads", "2"), "cpu_time_limit", 1.0, "stdout", "main.txt"))
	expectVerdict(t, r, "CPUTimeLimitExceeded", nil)
	if !functionalOnly {
		between(t, "cpu_time", num(t, r, "cpu_time"), 1.0, 1.0+2*loadSlack)
		reports := strings.Fields(s.ok(obj{"command": "read_file", "path": "main.txt"})["content"].(string))
		if len(reports) == 0 {
			t.Fatal("the main thread reported no CPU time")
		}
		// Two threads split the second about evenly; one thread alone would
		// have burnt all of it.
		if main, _ := strconv.ParseFloat(reports[len(reports)-1], 64); main > 0.8 {
			t.Errorf("the main thread used %.3f s of the %.3f s of CPU time: the other thread's time was not counted", main, num(t, r, "cpu_time"))
		}
	}
}

func TestRealTimeLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "pause"), "real_time_limit", 0.3))
	expectVerdict(t, r, "RealTimeLimitExceeded", nil)
	if !functionalOnly {
		between(t, "real_time", num(t, r, "real_time"), 0.3, 0.3+loadSlack)
	}
}

// Waiting for a CPU is idleness too: the limit is well above what the spin
// may wait on a loaded machine, so that the kill comes in the pause.
func TestIdlenessTimeLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "spin-pause", "0.1"), "idleness_time_limit", 0.4))
	expectVerdict(t, r, "IdlenessTimeLimitExceeded", nil)
	if !functionalOnly {
		within(t, "cpu_time", num(t, r, "cpu_time"), 0.1, 0.02)
		between(t, "idleness_time", num(t, r, "idleness_time"), 0.4-cpuTick, 0.4+loadSlack)
	}
}

// The metrics of a run that ended by itself, against the wall and CPU time
// the program measured itself: its own span, which includes a 0.2 s sleep
// and however long the machine kept it waiting, is the most real_time can
// differ from.
func TestMetricsOfAFinishedRun(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "spin-sleep", "0.1", "0.2"), "idleness_time_limit", 1.0, "stdout", "took.txt"))
	expectVerdict(t, r, "OK", code(0))
	var span, cpu float64
	took := s.ok(obj{"command": "read_file", "path": "took.txt"})["content"].(string)
	if _, err := fmt.Sscan(took, &span, &cpu); err != nil {
		t.Fatalf("the probe's report %q: %v", took, err)
	}
	real, idle := num(t, r, "real_time"), num(t, r, "idleness_time")
	if idle != math.Max(0, real-num(t, r, "cpu_time")) {
		t.Errorf("idleness_time %v is not real_time - cpu_time: %v", idle, r)
	}
	if !functionalOnly {
		within(t, "cpu_time", num(t, r, "cpu_time"), 0.1, 0.02)
		between(t, "real_time", real, span, span+loadSlack)
		between(t, "idleness_time", idle, span-cpu-cpuTick, span-cpu+loadSlack)
	}
}

func TestMemoryLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "mem", "512"), "memory_limit", 100_000_000))
	expectVerdict(t, r, "MemoryLimitExceeded", nil)
	if m := num(t, r, "memory"); m > 100_000_000 || m < 90_000_000 {
		t.Errorf("memory: got %.0f, want the peak near the 100 MB limit", m)
	}
}

// The OOM killer must pick the program, never the box's init: many small
// processes over the limit.
func TestOOMKillsTheProgramNotTheBox(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "oomscore"), "stdout", "score.txt"))
	expectVerdict(t, r, "OK", code(0))
	if got := s.ok(obj{"command": "read_file", "path": "score.txt"})["content"]; got != "1000\n" {
		t.Errorf("the program's oom_score_adj is %q, want 1000", got)
	}
	r = s.ok(with(run("sh", "-c", "for i in 1 2 3 4 5 6 7 8; do ./probe mem 8 & done; wait; ./probe mem 64"), "memory_limit", 24<<20))
	expectVerdict(t, r, "MemoryLimitExceeded", nil)
	expectVerdict(t, s.ok(run("./probe", "exit", "0")), "OK", code(0)) // the box lives on

	// A program may lower its own score again, and fill the run's memory
	// with files, which count in no process's size: the run still ends in
	// MemoryLimitExceeded, and the box lives on.
	r = s.ok(with(run("sh", "-c", "echo 0 > /proc/self/oom_score_adj; head -c 200000000 /dev/zero > /tmp/f"), "memory_limit", 64<<20))
	expectVerdict(t, r, "MemoryLimitExceeded", nil)
	s.ok(obj{"command": "reset_box"})
	s.installProbe(0)
	expectVerdict(t, s.ok(run("./probe", "exit", "0")), "OK", code(0))
}

// Page cache that an earlier run left in the box (a compiler's files) must
// not widen the next run's memory limit. The file read is made fresh on the
// host, so that its pages are charged to the box that reads them.
func TestPageCacheOfEarlierRunsDoesNotWidenTheLimit(t *testing.T) {
	f, err := os.CreateTemp("/usr/lib", "sandboxd-cache-test-")
	if err != nil {
		t.Skipf("cannot place a fresh file under /usr/lib, which boxes show: %v", err)
	}
	defer os.Remove(f.Name())
	f.Chmod(0o644)
	block := make([]byte, 1<<20)
	for i := 0; i < 96; i++ {
		if _, err := f.Write(block); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) // out of the host's page cache
	f.Close()
	s := startServer(t)
	s.installProbe(0)
	expectVerdict(t, s.ok(with(run("cat", f.Name()), "stdout", "/dev/null")), "OK", code(0))
	r := s.ok(with(run("./probe", "mem", "100"), "memory_limit", 64<<20))
	expectVerdict(t, r, "MemoryLimitExceeded", nil)
	expectVerdict(t, s.ok(with(run("./probe", "mem", "40"), "memory_limit", 64<<20)), "OK", code(0))
}

func TestMemoryMetric(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "mem", "10"), "memory_limit", 64<<20))
	expectVerdict(t, r, "OK", code(0))
	if m := num(t, r, "memory"); m < 10<<20 || m > 14<<20 {
		t.Errorf("memory: got %.0f bytes, want about 10 MiB", m)
	}
}

// The sandbox's own work is never a run's: cpu_time is what the kernel
// accounts to the program's processes, as a bare parent sees it in the
// rusage of wait4. Both are compared with the program's own getrusage just
// before it exits (its exit costs some of a millisecond here), in runs
// interleaved on the host and in the box, median against median.
func TestCPUTimeIsTheProgramsOwn(t *testing.T) {
	if functionalOnly {
		t.Skip("a timing precision check")
	}
	s := startServer(t)
	s.installProbe(0)
	var bare, boxed []float64
	for i := 0; i < 15; i++ {
		var out strings.Builder
		cmd := exec.Command(probePath, "spin-rusage", "0.3")
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		bare = append(bare, float64(ru.Utime.Nano()+ru.Stime.Nano())/1e9-ownCPU(t, out.String()))

		r := s.ok(with(run("./probe", "spin-rusage", "0.3"), "stdout", "own.txt"))
		expectVerdict(t, r, "OK", code(0))
		boxed = append(boxed, num(t, r, "cpu_time")-ownCPU(t, s.ok(obj{"command": "read_file", "path": "own.txt"})["content"].(string)))
	}
	t.Logf("medians of cpu_time - own getrusage: box %.6f s, bare %.6f s", median(boxed), median(bare))
	// The sandbox's work would add to cpu_time; a box that reports less than
	// a bare parent only saw a cheaper exit (the bare one's varies with the
	// load), but never less than the program's own count.
	if d := median(boxed) - median(bare); d > 0.0003 {
		t.Errorf("cpu_time is %+.6f s more than a bare parent sees (medians of cpu_time - own getrusage: box %.6f, bare %.6f)", d, median(boxed), median(bare))
	}
	if m := median(boxed); m < -0.0003 {
		t.Errorf("cpu_time is %.6f s less than the program's own getrusage (median)", -m)
	}
}

func ownCPU(t *testing.T, report string) float64 {
	t.Helper()
	var own float64
	if _, err := fmt.Sscan(report, &own); err != nil {
		t.Fatalf("the probe's report %q: %v", report, err)
	}
	return own
}

// One thread cannot use more CPU than the time it ran: the CPU the sandbox
// spends starting and reaping a run is not the program's.
func TestCPUTimeOfOneThreadIsWithinRealTime(t *testing.T) {
	s := startServer(t)
	for i := 0; i < 50; i++ {
		r := s.ok(run("/bin/true"))
		expectVerdict(t, r, "OK", code(0))
		if cpu, real := num(t, r, "cpu_time"), num(t, r, "real_time"); cpu > real {
			t.Errorf("run %d: cpu_time %v > real_time %v", i, cpu, real)
		}
	}
}

// An empty program fits a 10 ms CPU limit every time: the sandbox's own
// work on the run counts for nothing.
func TestEmptyProgramFitsATenMillisecondLimit(t *testing.T) {
	if functionalOnly {
		t.Skip("an emulated machine may take 10 ms to start any program")
	}
	s := startServer(t)
	s.installProbe(0)
	for i := 0; i < 30; i++ {
		expectVerdict(t, s.ok(with(run("./probe", "exit", "0"), "cpu_time_limit", 0.01)), "OK", code(0))
	}
}

func TestForkBombIsContained(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "forkbomb"), "processes_limit", 10, "stdout", "fork.txt"))
	expectVerdict(t, r, "OK", code(0))
	out := s.ok(obj{"command": "read_file", "path": "fork.txt"})
	if out["content"] != "forked 9\n" {
		t.Errorf("with processes_limit 10 the program (1 process) could fork 9 more; it says %q", out["content"])
	}
	// Nothing of the run is left: the next run sees only itself in /proc.
	r = s.ok(with(run("./probe", "pids"), "stdout", "pids.txt"))
	expectVerdict(t, r, "OK", code(0))
	pids := strings.Fields(s.ok(obj{"command": "read_file", "path": "pids.txt"})["content"].(string))
	if len(pids) != 2 { // the box's init and the probe itself
		t.Errorf("after the fork bomb, /proc shows %v", pids)
	}
}

// System V IPC objects do not outlive their run.
func TestIPCObjectsDieWithTheRun(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	expectVerdict(t, s.ok(run("./probe", "shm", "put")), "OK", code(0))
	s.ok(with(run("./probe", "shm", "get"), "stdout", "shm.txt"))
	if got := s.ok(obj{"command": "read_file", "path": "shm.txt"})["content"]; got != "none\n" {
		t.Errorf("the next run found the previous run's shared memory: %q", got)
	}
}

func TestDaemonDiesWithTheRun(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	expectVerdict(t, s.ok(run("./probe", "daemon")), "OK", code(0))
	s.ok(with(run("./probe", "pids"), "stdout", "pids.txt"))
	pids := strings.Fields(s.ok(obj{"command": "read_file", "path": "pids.txt"})["content"].(string))
	if len(pids) != 2 {
		t.Errorf("a daemonised child outlived its run: /proc shows %v", pids)
	}
}

func TestStdioRedirection(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	s.ok(obj{"command": "write_file", "path": "in/data.txt", "content": "line one\nline two\n"})
	r := s.ok(with(run("./probe", "cat"), "stdin", "in/data.txt", "stdout", "out.txt", "stderr", "/space/err.txt"))
	expectVerdict(t, r, "OK", code(0))
	if got := s.ok(obj{"command": "read_file", "path": "out.txt"})["content"]; got != "line one\nline two\n" {
		t.Errorf("stdout file: %q", got)
	}
	if got := s.ok(obj{"command": "read_file", "path": "err.txt"})["content"]; got != "done\n" {
		t.Errorf("stderr file: %q", got)
	}
	// stdout and stderr may name one file; neither overwrites the other.
	s.ok(with(run("sh", "-c", "echo out; echo err >&2"), "stdout", "both.txt", "stderr", "both.txt"))
	if got := s.ok(obj{"command": "read_file", "path": "both.txt"})["content"]; got != "out\nerr\n" {
		t.Errorf("shared stdout/stderr file: %q", got)
	}
	// A missing stdin file is an error reply, not a verdict.
	expectError(t, s.call(with(run("./probe", "cat"), "stdin", "missing.txt")), "exec_failed")
}

func TestEnvReplacesTheEnvironment(t *testing.T) {
	s := startServer(t)
	s.ok(obj{"command": "write_file", "path": "env.py", "content": "import os\nfor k in sorted(os.environ):\n    print(k + '=' + os.environ[k])\n"})
	r := s.ok(with(run("/usr/bin/python3", "env.py"), "env", obj{"ONLY": "this", "PATH": "/usr/bin", "LC_ALL": "C.UTF-8"}, "stdout", "env.txt"))
	expectVerdict(t, r, "OK", code(0))
	got := s.ok(obj{"command": "read_file", "path": "env.txt"})["content"]
	if got != "LC_ALL=C.UTF-8\nONLY=this\nPATH=/usr/bin\n" {
		t.Errorf("environment seen by the program: %q", got)
	}
	// Without env, the program inherits sandboxd's environment.
	s.ok(with(run("/usr/bin/python3", "env.py"), "stdout", "env.txt"))
	got = s.ok(obj{"command": "read_file", "path": "env.txt"})["content"]
	if !strings.Contains(got.(string), "PATH="+os.Getenv("PATH")+"\n") {
		t.Errorf("inherited environment lacks sandboxd's PATH: %q", got)
	}
}

// POSIX named semaphores and shared memory work (they live in /dev/shm).
func TestPOSIXSemaphores(t *testing.T) {
	s := startServer(t)
	r := s.ok(with(run("python3", "-c", "import multiprocessing as m; l = m.Lock(); l.acquire(); l.release(); print('ok')"), "stdout", "out", "stderr", "out"))
	out := s.ok(obj{"command": "read_file", "path": "out"})["content"]
	if r["exit_code"] != 0.0 || out != "ok\n" {
		t.Errorf("a multiprocessing lock: %v, %q", r, out)
	}
}

func TestNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "connect", port), "stdout", "net.txt"))
	expectVerdict(t, r, "OK", code(1))
	if got := s.ok(obj{"command": "read_file", "path": "net.txt"})["content"]; !strings.Contains(got.(string), "unreachable") {
		t.Logf("connect failed with: %q", got)
	}
}

func TestHostDirsAreReadOnly(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	for _, p := range []string{"/usr/evil", "/bin/evil", "/lib/evil", "/evil", "/dev/evil", "/proc/evil"} {
		r := s.ok(with(run("./probe", "create", p), "stdout", "create.txt"))
		expectVerdict(t, r, "OK", code(1))
	}
	for _, p := range []string{"/space/ok", "/tmp/ok"} {
		expectVerdict(t, s.ok(run("./probe", "create", p)), "OK", code(0))
	}
}

func TestNoNewNamespaces(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "escape"), "stdout", "escape.txt"))
	out := s.ok(obj{"command": "read_file", "path": "escape.txt"})["content"]
	if r["exit_code"] != 0.0 || strings.Count(out.(string), "Operation not permitted") != 4 || !strings.Contains(out.(string), "clone3 CLONE_NEWUSER: Function not implemented") {
		t.Errorf("a program made a namespace (where it would be root): %v\n%s", r, out)
	}
	// Another ABI's system calls would pass rules written for the native
	// numbers: the filter kills the process (SIGSYS). A kernel without IA32
	// emulation has no i386 calls at all: there int 0x80 is a protection
	// fault (SIGSEGV), in a box or not. What the probe gets outside any box
	// tells which to expect; either way the call must never return.
	want := -int(syscall.SIGSYS)
	err := exec.Command(probePath, "int80").Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled():
		sig := exit.Sys().(syscall.WaitStatus).Signal()
		t.Logf("outside any box, int 0x80 ends in signal %d (%v): this kernel makes no i386 system calls", sig, sig)
		want = -int(sig)
	case err != nil && exit == nil:
		t.Fatalf("run the probe on the host: %v", err)
	}
	r = s.ok(with(run("./probe", "int80"), "stdout", "int80.txt"))
	expectVerdict(t, r, "Signaled", code(want))
	if out := s.ok(obj{"command": "read_file", "path": "int80.txt"})["content"]; out != "" {
		t.Errorf("the i386 call returned in the box: %q", out)
	}
}

// The calls the box's seccomp filter refuses fail in a program as
// PROTOCOL.md says: EPERM, ENOSYS for io_uring. The probe makes each with
// arguments that the kernel itself would take from a user without
// capabilities (or answer with another error), so that only the filter
// explains the refusal. A call of the x32 ABI kills the program (SIGSYS):
// unlike i386's int 0x80, it reaches seccomp even on a kernel without x32
// support.
func TestRefusedSystemCalls(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "refused"), "stdout", "refused.txt"))
	expectVerdict(t, r, "OK", code(0))
	out := s.readFile(0, "refused.txt")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 15 {
		t.Errorf("the probe made %d calls, want 15:\n%s", len(lines), out)
	}
	for _, line := range lines {
		call, got, _ := strings.Cut(line, " ")
		want := "EPERM"
		if call == "io_uring_setup" {
			want = "ENOSYS"
		}
		if got != want {
			t.Errorf("%s in a box: %s, want %s", call, got, want)
		}
	}
	r = s.ok(with(run("./probe", "x32"), "stdout", "x32.txt"))
	expectVerdict(t, r, "Signaled", code(-int(syscall.SIGSYS)))
	if out := s.readFile(0, "x32.txt"); out != "" {
		t.Errorf("the x32 call returned in the box: %q", out)
	}
}

// The host paths a box shows only to some runs (the nix store, the nix
// daemon's socket) are out of reach of every other run.
func TestHiddenViewsAreOutOfReach(t *testing.T) {
	s := startServer(t)
	r := s.ok(with(run("sh", "-c", "ls /.views/nix-daemon /.views/nix-store"), "stdout", "out", "stderr", "out"))
	out := s.ok(obj{"command": "read_file", "path": "out"})["content"].(string)
	denied := strings.Count(out, "Permission denied") + strings.Count(out, "No such file") // no views on a host without nix
	if r["exit_code"] == 0.0 || denied != 2 || strings.Count(out, "\n") != 2 {
		t.Errorf("a run without runtime reached the hidden views: %v\n%s", r, out)
	}
}

func TestRunsAsAnUnprivilegedUser(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	s.ok(with(run("./probe", "id"), "stdout", "id.txt"))
	ids := strings.Fields(s.ok(obj{"command": "read_file", "path": "id.txt"})["content"].(string))
	if len(ids) != 2 || ids[0] == "0" || ids[1] == "0" {
		t.Errorf("uid and gid in the box: %v", ids)
	}
}

func TestProcShowsOnlyTheBox(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	s.ok(with(run("./probe", "pids"), "stdout", "pids.txt"))
	pids := strings.Fields(s.ok(obj{"command": "read_file", "path": "pids.txt"})["content"].(string))
	if len(pids) != 2 || pids[0] != "1" {
		t.Errorf("/proc in the box shows pids %v, want the box's init (1) and the program", pids)
	}
}

// What a program leaves in /space cannot trap the judge's file commands
// or the next run: FIFOs, symlinks out of the box, a directory it locked.
func TestPlantedFilesDoNotTrapTheServer(t *testing.T) {
	s := startServer(t)
	r := s.ok(with(run("sh", "-c", "mkfifo fifo && ln -s /etc/passwd passwd && ln -s / root && mkdir locked && touch locked/f && chmod 000 locked"), "processes_limit", 8))
	expectVerdict(t, r, "OK", code(0))
	expectError(t, s.call(obj{"command": "write_file", "path": "fifo", "content": "x"}), "invalid_argument")
	expectError(t, s.call(obj{"command": "read_file", "path": "fifo"}), "invalid_argument")
	expectError(t, s.call(with(run("cat"), "stdin", "fifo")), "exec_failed")
	expectError(t, s.call(obj{"command": "read_file", "path": "passwd"}), "no_such_file")
	expectError(t, s.call(obj{"command": "read_file", "path": "root/etc/passwd"}), "no_such_file")
	s.ok(obj{"command": "write_file", "path": "root/etc/x", "content": "stays in the box"})
	if _, err := os.Stat("/etc/x"); err == nil {
		t.Fatalf("write_file through a planted symlink wrote /etc/x on the host")
	}
	s.ok(obj{"command": "list_files", "path": "root"})
	s.ok(obj{"command": "remove_file", "path": "locked"})
	// A program that locks its own working directory breaks runs only until reset_box.
	s.ok(run("chmod", "000", "/space", "/tmp"))
	s.ok(obj{"command": "reset_box"})
	if entries := s.ok(obj{"command": "list_files"})["entries"].([]any); len(entries) != 0 {
		t.Errorf("after reset_box: %v", entries)
	}
	r = s.ok(with(run("sh", "-c", "echo ok > /tmp/t && cat /tmp/t"), "stdout", "out.txt"))
	expectVerdict(t, r, "OK", code(0))
}

func TestHugeOutputIsBounded(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	box := s.ok(obj{"command": "open_box", "quota_space": 64 << 20})["box"]
	s.installProbe(int(box.(float64)))
	r := s.ok(with(run("./probe", "flood", "1024"), "box", box, "stdout", "flood.txt"))
	if r["limit_verdict"] == "OK" && r["exit_code"] == 0.0 {
		t.Fatalf("1 GiB written into a 64 MiB box succeeded: %v", r)
	}
	list := s.ok(obj{"command": "list_files", "box": box})["entries"].([]any)
	for _, e := range list {
		if e := e.(map[string]any); e["name"] == "flood.txt" && e["size"].(float64) > 64<<20 {
			t.Errorf("flood.txt grew past the quota: %v", e)
		}
	}
	// The server goes on.
	expectVerdict(t, s.ok(run("./probe", "exit", "0")), "OK", code(0))
}

func TestBadRequestsGetErrorReplies(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		line, code string
	}{
		{`{"command":"run","argv":["/bin/true"],"processes_limit":1}`, "missing_limit"},
		{`{"command":"run","argv":["/bin/true"],"cpu_time_limit":1}`, "missing_limit"},
		{`{"command":"run","argv":["/bin/true"],"cpu_limit":1,"cpu_time_limit":1,"processes_limit":1}`, "unknown_field"},
		{`{"command":"run","argv":["/bin/true"],"cpu_time_limit":-1,"processes_limit":1}`, "invalid_argument"},
		{`{"command":"run","argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1,"memory_limit":9223372036854775807}`, "invalid_argument"},
		{`{"command":"open_box","dirs":["/usr","/../../etc"]}`, "invalid_argument"},
		{`{"command":"open_box","dirs":["/dev"]}`, "invalid_argument"},
		{`{"command":"open_box","dirs":["/tmp/x"]}`, "invalid_argument"},
		{`{"command":"run","argv":["/bin/true"],"cpu_time_limit":"1","processes_limit":1}`, "invalid_argument"},
		{`{"command":"run","argv":[],"cpu_time_limit":1,"processes_limit":1}`, "invalid_argument"},
		{`{"command":"run","argv":["/bin/true",null],"cpu_time_limit":1,"processes_limit":1}`, "invalid_argument"},
		{`{"command":"run","argv":["/bin/true"],"env":{"A":null},"cpu_time_limit":1,"processes_limit":1}`, "invalid_argument"},
		{`{"command":"run","argv":["/bin/true"],"CPU_TIME_LIMIT":1,"cpu_time_limit":1,"processes_limit":1}`, "unknown_field"},
		{`null`, "bad_json"},
		{`{"command":"run","argv":["/no/such/program"],"cpu_time_limit":1,"processes_limit":1}`, "exec_failed"},
		{`{"command":"run","argv":["no-such-program"],"cpu_time_limit":1,"processes_limit":1}`, "exec_failed"},
		{`{"command":"run","box":7,"argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1}`, "no_such_box"},
		{`{"command":"fly"}`, "unknown_command"},
		{`{"command":"read_file","path":"../../etc/passwd"}`, "invalid_argument"},
		{`{"command":"read_file","path":"nothing-here"}`, "no_such_file"},
		{`{not json`, "bad_json"},
		{`[1,2]`, "bad_json"},
	}
	for _, c := range cases {
		expectError(t, s.call(c.line), c.code)
	}
	// Ids are echoed, also on errors.
	r := s.call(`{"command":"fly","id":"req-7"}`)
	if r["id"] != "req-7" {
		t.Errorf("id not echoed: %v", r)
	}
	// The server still works after all of that.
	expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
}

func TestLongLineIsSkipped(t *testing.T) {
	s := startServer(t, "--max-line", "1000")
	expectError(t, s.call(`{"command":"run","argv":["`+strings.Repeat("a", 2000)+`"]}`), "line_too_long")
	expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
}

func TestEndOfInputLeavesNothing(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	s.ok(obj{"command": "open_box"})
	s.ok(run("./probe", "daemon"))
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code %d at end of input (stderr: %s)", code, s.stderr.String())
	}
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}
