package tests

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Per-run bounds a judge sets per language: stack_limit, file_size_limit,
// open_files_limit, each an rlimit of every process of the run.

// readFile reads a whole small file of a box.
func (s *server) readFile(box int, path string) string {
	s.t.Helper()
	return s.ok(obj{"command": "read_file", "box": box, "path": path})["content"].(string)
}

// fileSize is the size of a file of a box.
func (s *server) fileSize(box int, path string) float64 {
	s.t.Helper()
	return s.ok(obj{"command": "read_file", "box": box, "path": path, "max_bytes": 1})["size"].(float64)
}

func TestStackLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	expectVerdict(t, s.ok(with(run("./probe", "stack", "4096"), "stack_limit", 1<<20)), "Signaled", code(-11))
	expectVerdict(t, s.ok(with(run("./probe", "stack", "512"), "stack_limit", 1<<20)), "OK", code(0))
	// Without stack_limit (nor memory_limit) the stack is as large as the program likes.
	expectVerdict(t, s.ok(run("./probe", "stack", "65536")), "OK", code(0))
	// stack_limit wins over the stack that memory_limit gives.
	expectVerdict(t, s.ok(with(run("./probe", "stack", "4096"), "stack_limit", 1<<20, "memory_limit", 256<<20)), "Signaled", code(-11))
}

// file_size_limit is the judge's output limit: a program that writes past
// it gets SIGXFSZ, as under isolate, and the server goes on.
func TestFileSizeLimit(t *testing.T) {
	s := startServer(t)
	r := s.ok(with(run("yes"), "stdout", "out.txt", "file_size_limit", 1<<20))
	expectVerdict(t, r, "Signaled", code(-25))
	if size := s.fileSize(0, "out.txt"); size != 1<<20 {
		t.Errorf("out.txt has %v bytes, want the limit, 1 MiB", size)
	}
	// A file exactly at the limit is fine; a byte more is not, wherever it is.
	r = s.ok(with(run("head", "-c", "1048576", "/dev/zero"), "stdout", "exact.bin", "file_size_limit", 1<<20))
	expectVerdict(t, r, "OK", code(0))
	if size := s.fileSize(0, "exact.bin"); size != 1<<20 {
		t.Errorf("exact.bin has %v bytes, want 1 MiB", size)
	}
	r = s.ok(with(run("head", "-c", "1048577", "/dev/zero"), "stdout", "/tmp/over.bin", "file_size_limit", 1<<20))
	expectVerdict(t, r, "Signaled", code(-25))
	// The limit is the run's only: the next run writes as much as the box holds.
	expectVerdict(t, s.ok(with(run("head", "-c", "2000000", "/dev/zero"), "stdout", "big.bin")), "OK", code(0))
	expectVerdict(t, s.ok(run("true")), "OK", code(0))
}

// Without file_size_limit, a box's quota_space ends a write with ENOSPC, as
// a full disk would, not with a signal: the program sees the error.
func TestWritingPastTheQuotaIsENOSPC(t *testing.T) {
	s := startServer(t)
	box := int(s.ok(obj{"command": "open_box", "quota_space": 1 << 20})["box"].(float64))
	// stdout fills /space: the program's complaint goes to /tmp, which the
	// judge cannot read, so its exit code tells.
	r := s.ok(with(run("head", "-c", "2000000", "/dev/zero"), "box", box, "stdout", "out.bin", "stderr", "/tmp/err.txt"))
	expectVerdict(t, r, "OK", code(1))
	if size := s.fileSize(box, "out.bin"); size > 1<<20 || size < 1<<19 {
		t.Errorf("out.bin has %v bytes, want up to the 1 MiB quota", size)
	}
	s.ok(obj{"command": "remove_file", "box": box, "path": "out.bin"})
	r = s.ok(with(run("sh", "-c", "head -c 2000000 /dev/zero > /tmp/big"), "box", box, "stderr", "err.txt"))
	expectVerdict(t, r, "OK", code(1))
	if msg := s.readFile(box, "err.txt"); !strings.Contains(msg, "No space left on device") {
		t.Errorf("the program said %q, want ENOSPC's message", msg)
	}
}

func TestOpenFilesLimit(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	for _, c := range []struct {
		limit any
		want  string
	}{{10, "opened 7, then EMFILE\n"}, {nil, "opened 1021, then EMFILE\n"}} {
		req := with(run("./probe", "openfiles"), "stdout", "open.txt")
		if c.limit != nil {
			req = with(req, "open_files_limit", c.limit)
		}
		expectVerdict(t, s.ok(req), "OK", code(0))
		if got := s.readFile(0, "open.txt"); got != c.want {
			t.Errorf("open_files_limit %v: the program %q, want %q (0, 1 and 2 are open)", c.limit, got, c.want)
		}
	}
}

// The bounds are positive integers, bounded: anything else is
// invalid_argument, and the server goes on.
func TestProcessLimitsAreValidated(t *testing.T) {
	s := startServer(t)
	for _, field := range []string{"stack_limit", "file_size_limit", "open_files_limit"} {
		for _, value := range []string{"0", "-1", "1.5", `"1"`, "true", "1e30", "9223372036854775807", "1125899906842625"} {
			line := `{"command":"run","argv":["true"],"cpu_time_limit":1,"processes_limit":1,"` + field + `":` + value + `}`
			expectError(t, s.call(line), "invalid_argument")
		}
	}
	expectError(t, s.call(`{"command":"run","argv":["true"],"cpu_time_limit":1,"processes_limit":1,"open_files_limit":1048577}`), "invalid_argument")
	expectVerdict(t, s.ok(with(run("true"), "stack_limit", 1<<50, "file_size_limit", 1<<50, "open_files_limit", 64)), "OK", code(0))

	// Above the hard limit sandboxd runs with, a host that denies
	// CAP_SYS_RESOURCE lets no process raise it: the run cannot start.
	var hard unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &hard); err != nil {
		t.Fatal(err)
	}
	if hard.Max >= 1<<20 {
		return
	}
	r := s.call(with(run("true"), "open_files_limit", hard.Max+1))
	if hasCapability(t, unix.CAP_SYS_RESOURCE) {
		expectVerdict(t, r, "OK", code(0))
	} else {
		expectError(t, r, "exec_failed")
	}
	expectVerdict(t, s.ok(run("true")), "OK", code(0))
}

// hasCapability tells whether this process has capability c in effect.
func hasCapability(t *testing.T, c int) bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(status), "CapEff:\t")
	eff, err := strconv.ParseUint(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return eff&(1<<c) != 0
}
