// Package tests drives a real sandboxd binary through its protocol, as a
// judge would: conformance cases, golden sessions and benchmarks.
package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandboxd/executor/executortest"
)

var (
	sandboxdBin string // the binary under test
	probePath   string // testdata/progs/probe.c, compiled
	probeBin    []byte // its contents
	// functionalOnly skips the checks of timing precision, for slow
	// emulated machines such as the cgroup v2 guest.
	functionalOnly = os.Getenv("SANDBOXD_FUNCTIONAL_ONLY") != ""
)

func TestMain(m *testing.M) {
	if os.Getenv(floorServerEnv) != "" {
		serveFloor()
		return
	}
	if os.Geteuid() != 0 {
		fmt.Println("tests: sandboxd needs root; run the tests as root")
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "sandboxd-tests-")
	if err != nil {
		panic(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := prepare(dir); err != nil {
			fmt.Println("tests:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// prepare finds or builds the sandboxd binary and the probe program. Set
// SANDBOXD_BIN and SANDBOXD_PROBE to use prebuilt ones (the cgroup v2 guest
// has no compiler time to spare).
func prepare(dir string) error {
	sandboxdBin = os.Getenv("SANDBOXD_BIN")
	if sandboxdBin == "" {
		sandboxdBin = filepath.Join(dir, "sandboxd")
		// The tags of make build (Makefile: TAGS): the binary that ships.
		cmd := exec.Command("go", "build", "-tags", "netgo,sqlite_omit_load_extension", "-o", sandboxdBin, "../cmd/sandboxd")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build sandboxd: %v\n%s", err, out)
		}
	}
	probePath = os.Getenv("SANDBOXD_PROBE")
	if probePath == "" {
		probePath = filepath.Join(dir, "probe")
		cmd := exec.Command("gcc", "-O1", "-Wall", "-pthread", "-o", probePath, "../testdata/progs/probe.c")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("compile probe.c: %v\n%s", err, out)
		}
	}
	var err error
	probeBin, err = os.ReadFile(probePath)
	return err
}

// server is a sandboxd process driven over its stdin and stdout.
type server struct {
	t        *testing.T
	cmd      *exec.Cmd
	in       io.WriteCloser
	out      *bufio.Reader
	stderr   bytes.Buffer
	stateDir string
	// uidBase is the --uid-base the harness gave it (see baseArgs).
	uidBase  int
	freeUIDs func()
	exited   bool
}

// obj is a decoded reply.
type obj = map[string]any

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerOn(t, t.TempDir(), args...)
}

// startServerOn starts sandboxd on the given state dir.
func startServerOn(t *testing.T, stateDir string, args ...string) *server {
	t.Helper()
	s := newServer(t, stateDir, args...)
	s.start()
	return s
}

// startServerInheriting starts sandboxd with files open at the given
// descriptors (3 and up), as a careless judge would leave them.
func startServerInheriting(t *testing.T, files map[int]*os.File, args ...string) *server {
	t.Helper()
	s := newServer(t, t.TempDir(), args...)
	for fd, f := range files {
		for len(s.cmd.ExtraFiles) <= fd-3 {
			s.cmd.ExtraFiles = append(s.cmd.ExtraFiles, nil) // closed in sandboxd
		}
		s.cmd.ExtraFiles[fd-3] = f
	}
	s.start()
	return s
}

// newServer prepares a sandboxd command on a state dir.
func newServer(t *testing.T, stateDir string, args ...string) *server {
	t.Helper()
	s := &server{t: t, stateDir: stateDir}
	s.uidBase, s.freeUIDs = holdUIDs(t)
	t.Cleanup(s.freeUIDs)
	s.cmd = exec.Command(sandboxdBin, append(baseArgs(stateDir, s.uidBase), args...)...)
	return s
}

// baseArgs are the flags of every sandboxd a test starts, with the uids of
// takeUIDs; later ones win.
func baseArgs(stateDir string, uidBase int) []string {
	return []string{"--state-dir", stateDir, "--log-level", "warn", "--uid-base", strconv.Itoa(uidBase)}
}

// The uids of a test run: RLIMIT_NPROC counts a uid's processes host-wide,
// so test runs that share a machine give each its own SANDBOXD_TEST_UID_BASE,
// 10000 apart; the sandboxd instances alive at once in a run take 1000 each
// of them (a sandboxd holds 1000 uids and refuses to start on uids another
// holds), the first eight thousands (see executortest.UIDs).
var (
	uidSlotsM sync.Mutex
	uidSlots  [8]bool
)

// takeUIDs gives a sandboxd of the test a --uid-base of its own among those
// alive in this run, until the test ends.
func takeUIDs(t *testing.T) int {
	t.Helper()
	base, free := holdUIDs(t)
	t.Cleanup(free)
	return base
}

// holdUIDs is takeUIDs until free is called (once or more): a server frees
// its uids when it has exited, so that a benchmark, whose fake T runs no
// cleanups, can start any number of them one after another.
func holdUIDs(t *testing.T) (base int, free func()) {
	t.Helper()
	uidSlotsM.Lock()
	defer uidSlotsM.Unlock()
	for i, used := range uidSlots {
		if !used {
			uidSlots[i] = true
			return executortest.UIDs(i), sync.OnceFunc(func() {
				uidSlotsM.Lock()
				uidSlots[i] = false
				uidSlotsM.Unlock()
			})
		}
	}
	t.Fatalf("more than %d sandboxd at once in one test", len(uidSlots))
	return 0, nil
}

// start starts s.cmd with its stdin and stdout piped to the test.
func (s *server) start() {
	t := s.t
	t.Helper()
	s.cmd.Stderr = &s.stderr
	var err error
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewReaderSize(stdout, 1<<20)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !s.exited {
			s.in.Close()
			s.wait()
		}
	})
}

// send writes one raw request line.
func (s *server) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.in, line+"\n"); err != nil {
		s.t.Fatalf("send: %v (stderr: %s)", err, s.stderr.String())
	}
}

// replyWait is longer than any request of the tests takes (the longest
// sleep under a real_time_limit of 120 s), even on an emulated machine.
const replyWait = 5 * time.Minute

// recvLine reads one raw reply line. A sandboxd that does not answer
// within replyWait gets SIGQUIT: it dumps its goroutines to the stderr the
// failure shows, and exits, so that a hang fails the test saying where.
func (s *server) recvLine() []byte {
	s.t.Helper()
	watchdog := time.AfterFunc(replyWait, func() { s.cmd.Process.Signal(syscall.SIGQUIT) })
	line, err := s.out.ReadBytes('\n')
	watchdog.Stop()
	if err != nil {
		s.t.Fatalf("read reply: %v (stderr: %s)", err, s.stderr.String())
	}
	return line
}

// recv reads one reply line.
func (s *server) recv() obj {
	s.t.Helper()
	line := s.recvLine()
	var m obj
	if err := json.Unmarshal(line, &m); err != nil {
		s.t.Fatalf("reply is not JSON: %q", line)
	}
	return m
}

// call sends a request (a map or a raw JSON line) and returns its reply.
func (s *server) call(req any) obj {
	s.t.Helper()
	line, ok := req.(string)
	if !ok {
		b, err := json.Marshal(req)
		if err != nil {
			s.t.Fatal(err)
		}
		line = string(b)
	}
	s.send(line)
	return s.recv()
}

// ok calls and fails the test on an error reply.
func (s *server) ok(req any) obj {
	s.t.Helper()
	r := s.call(req)
	if e, bad := r["error"]; bad {
		s.t.Fatalf("request %v failed: %v", req, e)
	}
	return r
}

// installProbe puts the probe program at /space/probe of a box.
func (s *server) installProbe(box int) {
	s.t.Helper()
	s.ok(obj{"command": "write_file", "box": box, "path": "probe", "content_base64": base64.StdEncoding.EncodeToString(probeBin), "mode": 0o755})
}

// wait closes stdin and waits for the exit; it returns the exit code.
func (s *server) wait() int {
	s.in.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-done
		s.t.Errorf("sandboxd did not exit within 60 s of the end of input")
	}
	s.exited = true
	s.freeUIDs()
	return s.cmd.ProcessState.ExitCode()
}

// run is a `run` request with the usual required limits.
func run(argv ...string) obj {
	return obj{"command": "run", "argv": argv, "cpu_time_limit": 5.0, "processes_limit": 16, "real_time_limit": 20.0}
}

func with(req obj, kv ...any) obj {
	out := obj{}
	for k, v := range req {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func num(t *testing.T, r obj, key string) float64 {
	t.Helper()
	v, ok := r[key].(float64)
	if !ok {
		t.Fatalf("reply %v has no number %q", r, key)
	}
	return v
}

func expectVerdict(t *testing.T, r obj, verdict string, exitCode *int) {
	t.Helper()
	if r["limit_verdict"] != verdict {
		t.Fatalf("verdict: got %v, want %s (reply %v)", r["limit_verdict"], verdict, r)
	}
	code, has := r["exit_code"]
	switch {
	case exitCode == nil && has:
		t.Errorf("%s reply carries exit_code %v: %v", verdict, code, r)
	case exitCode != nil && (!has || code != float64(*exitCode)):
		t.Errorf("exit_code: got %v, want %d (reply %v)", code, *exitCode, r)
	}
}

func code(c int) *int { return &c }

func expectError(t *testing.T, r obj, code string) {
	t.Helper()
	e, ok := r["error"].(map[string]any)
	if !ok {
		t.Fatalf("expected error %s, got reply %v", code, r)
	}
	if e["code"] != code {
		t.Fatalf("error code: got %v, want %s (%v)", e["code"], code, e["message"])
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Errorf("error %s has no message", code)
	}
}

func within(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if got < want-tol || got > want+tol {
		t.Errorf("%s: got %.4f, want %.4f ± %.4f", what, got, want, tol)
	}
}

func between(t *testing.T, what string, got, lo, hi float64) {
	t.Helper()
	if got < lo || got > hi {
		t.Errorf("%s: got %.4f, want between %.4f and %.4f", what, got, lo, hi)
	}
}

// Wall-clock tolerances, for machines up to 3x slower than an idle
// development machine and with another core busy.
const (
	// loadSlack is how much later a box may see a time limit pass, or its
	// program end, than the moment it happened: the limit watch and the
	// box's init wait for a CPU like any process. Idle, it is a few
	// milliseconds (make bench); with a core busy, up to 50 ms here, and
	// 140 ms with other tests running as well (a load of 12 on 2 CPUs).
	loadSlack = 0.25
	// cpuTick is how far the cgroup's CPU time may trail the CPU used (a
	// scheduler tick), so that an idleness limit is seen that much early.
	cpuTick = 0.01
)

// cgroupsOf lists the cgroups that a sandboxd on stateDir made its boxes'
// cgroups in, wherever they are: on cgroup v1 one per hierarchy, on v2
// beneath sandboxd's own cgroup.
func cgroupsOf(stateDir string) []string {
	name := instanceCgroup(stateDir)
	var found []string
	// Other sandboxd instances add and remove groups meanwhile: what
	// vanishes during the walk is not ours.
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil || !d.IsDir():
			return nil
		case d.Name() == name:
			found = append(found, path)
			return fs.SkipDir
		}
		return nil
	})
	return found
}

// leftovers lists what a stopped sandboxd left on the host: cgroups, mounts
// and processes of its state dir.
func leftovers(stateDir string) []string {
	var found []string
	for _, c := range cgroupsOf(stateDir) {
		found = append(found, "cgroup "+c)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, stateDir) {
			found = append(found, "mount "+line)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		environ, _ := os.ReadFile(p)
		if bytes.Contains(environ, []byte(stateDir)) {
			found = append(found, "process "+filepath.Dir(p))
		}
	}
	return found
}

// instanceCgroup names the cgroup of the sandboxd that owns stateDir.
func instanceCgroup(stateDir string) string {
	sum := sha256.Sum256([]byte(stateDir))
	return "sandboxd-" + hex.EncodeToString(sum[:4])
}
