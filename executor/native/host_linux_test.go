package native

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/executor/executortest"
	"sandboxd/spec"
)

func TestMain(m *testing.M) {
	RunBoxInitIfRequested()
	os.Exit(m.Run())
}

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

// A killed sandboxd leaves mounts, cgroups and box directories; the next
// instance on the same state dir removes them and starts clean.
func TestNativeRemovesWhatAKilledInstanceLeft(t *testing.T) {
	dir := t.TempDir()
	first, err := New(Config{StateDir: dir, UIDBase: executortest.UIDs(8), Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatal(err)
	}
	id, err := first.OpenBox(spec.BoxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// As if killed: the locks go with the process, nothing else is cleaned.
	// A killed instance builds no more spares either: its maker, a goroutine
	// of this test's process, would go on making boxes/spare-N beside the
	// next instance's.
	first.spares.stop()
	first.lock.Close()
	first.uids.Release()
	for _, id := range []int{executor.DefaultBox, id} {
		b, err := first.boxes.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		b.initProc.Process.Kill()
		b.initProc.Wait()
	}
	second, err := New(Config{StateDir: dir, UIDBase: executortest.UIDs(8), Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatalf("a new instance on the state dir of a killed one: %v", err)
	}
	defer second.Close()
	entries, _ := os.ReadDir(filepath.Join(dir, "boxes"))
	if len(entries) != 1 || entries[0].Name() != "0" {
		t.Errorf("boxes after restart: %v, want only box 0", entries)
	}
	req := &spec.RunRequest{Argv: []string{"/bin/true"}, Limits: spec.Limits{CPUTime: f64(1), Processes: i64(1)}}
	if res, err := executor.Run(context.Background(), second, executor.DefaultBox, req, executor.Runtime{}); err != nil || res.Verdict != spec.VerdictOK {
		t.Errorf("run after restart: %+v, %v", res, err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if n := strings.Count(string(mounts), filepath.Join(dir, "boxes", "1")); n > 0 {
		t.Errorf("%d mounts of the killed instance's box 1 remain", n)
	}
}

// A state dir named through a symlink is used by its real path (which is
// how mountinfo names the boxes' mounts), and its boxes/ is root's alone.
func TestStateDirIsResolvedAndPrivate(t *testing.T) {
	real, link := symlinkedDir(t)
	n, err := New(Config{StateDir: link, UIDBase: executortest.UIDs(8), Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.cfg.StateDir != real {
		t.Errorf("state dir %s, want its real path %s", n.cfg.StateDir, real)
	}
	fi, err := os.Stat(filepath.Join(real, "boxes"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("boxes/ has mode %v, want 0700", fi.Mode().Perm())
	}
}

// A crash of a box's init reaches the judge with its cause, and every line
// the init wrote reaches the log: its stderr is no longer /dev/null.
func TestACrashedInitIsNamed(t *testing.T) {
	var mu sync.Mutex
	var logged []string
	n, err := New(Config{StateDir: t.TempDir(), UIDBase: executortest.UIDs(8), Dirs: spec.DefaultDirs, InitLog: func(box int, line string) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, fmt.Sprintf("box %d: %s", box, line))
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b, err := n.boxes.Get(executor.DefaultBox)
	if err != nil {
		t.Fatal(err)
	}
	req := &spec.RunRequest{Argv: []string{"/bin/true"}, Limits: spec.Limits{CPUTime: new(1.0), Processes: new(int64(1))}}
	// Box 0's init starts in the background; a run waits for it.
	if res, err := executor.Run(context.Background(), n, executor.DefaultBox, req, executor.Runtime{}); err != nil || res.Verdict != spec.VerdictOK {
		t.Fatalf("a run in box 0: %+v, %v", res, err)
	}
	// The Go runtime of the init dies of SIGABRT with a dump on its stderr.
	pid := b.initProc.Process.Pid
	if err := b.initProc.Process.Signal(syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the init lives on after SIGABRT: %s", stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = executor.Run(context.Background(), n, executor.DefaultBox, req, executor.Runtime{})
	if err == nil || !strings.Contains(err.Error(), "the box's init said: SIGABRT: abort") {
		t.Errorf("run after the init crashed: %v, want an error that names SIGABRT", err)
	}
	mu.Lock()
	if !slices.Contains(logged, "box 0: SIGABRT: abort") || len(logged) < 3 {
		t.Errorf("the log heard %d lines of the init's stderr: %q", len(logged), logged)
	}
	mu.Unlock()
	if res, err := executor.Run(context.Background(), n, executor.DefaultBox, req, executor.Runtime{}); err != nil || res.Verdict != spec.VerdictOK {
		t.Errorf("the run after, in a new init: %+v, %v", res, err)
	}
}

// A program is born in its run's cgroup, which comes with the run request
// as files (cgroup v2: the cgroup; v1: the CPU counter and the tasks file
// of the memory group that the forker thread joins). The init refuses a
// run that came without them rather than fork the program where the
// forker thread last was: in an earlier run's memory group, under that
// run's limit, or in the init's own cgroup.
func TestARunWithoutItsCgroupIsRefused(t *testing.T) {
	b := heldBox0(t)
	b.runs++
	msg := &initMessage{Op: opRun, Run: b.runs, Argv: []string{"/bin/true"}, UID: b.uid, GID: b.uid}
	if err := b.ctl.send(msg, nil); err != nil {
		t.Fatal(err)
	}
	m, err := b.recvRun(initAnswerTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if m.Op != opFailed {
		t.Errorf("a run without its cgroup's files: the init answered %q, want %q", m.Op, opFailed)
	}
}

// failingBegin is a box's accounting whose Begin fails after the run's
// group was readied, as a control file's write error would (one cannot be
// caused on demand), and clears what it made as Begin's own errors do.
type failingBegin struct{ cgroup.Box }

func (f failingBegin) Begin(l cgroup.Limits) ([]*os.File, error) {
	files, err := f.Box.Begin(l)
	for _, file := range files {
		file.Close()
	}
	if err == nil {
		f.Box.End()
		err = errors.New("write a control file: input/output error (injected)")
	}
	return nil, err
}

// A run whose accounting could not begin fails alone: the box's next run
// gets accounting of its own and runs.
func TestARunWhoseAccountingFailsLeavesTheBoxUsable(t *testing.T) {
	b, run := box0AfterARun(t)
	b.mu.Lock()
	real := b.acct
	b.acct = failingBegin{real}
	b.mu.Unlock()
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("a run whose accounting fails: %v, want the injected error", err)
	}
	b.mu.Lock()
	b.acct = real
	b.mu.Unlock()
	for i := 0; i < 3; i++ {
		if res, err := run(); err != nil || res.Verdict != spec.VerdictOK {
			t.Fatalf("run %d after it: %+v, %v, want OK", i+1, res, err)
		}
	}
}

// testExecutor starts an executor, closed when the test ends.
func testExecutor(t *testing.T) *Executor {
	t.Helper()
	n, err := New(Config{StateDir: t.TempDir(), UIDBase: executortest.UIDs(8), Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// runTrue runs /bin/true in box id.
func runTrue(n *Executor, id int) (spec.RunResult, error) {
	req := &spec.RunRequest{Argv: []string{"/bin/true"}, Limits: spec.Limits{CPUTime: new(1.0), Processes: new(int64(1))}}
	return executor.Run(context.Background(), n, id, req, executor.Runtime{})
}

// boxAfterARun runs /bin/true in box id, whose init starts in the
// background (a run waits for it), and returns the box.
func boxAfterARun(t *testing.T, n *Executor, id int) *box {
	t.Helper()
	if res, err := runTrue(n, id); err != nil || res.Verdict != spec.VerdictOK {
		t.Fatalf("a run in box %d: %+v, %v", id, res, err)
	}
	b, err := n.boxes.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// box0AfterARun starts an executor and runs /bin/true in box 0; it returns
// box 0 and a function that runs /bin/true there again.
func box0AfterARun(t *testing.T) (*box, func() (spec.RunResult, error)) {
	t.Helper()
	n := testExecutor(t)
	return boxAfterARun(t, n, executor.DefaultBox), func() (spec.RunResult, error) { return runTrue(n, executor.DefaultBox) }
}

// heldBox0 is box 0 after a run, held (locked) until the test ends with its
// next run prepared: a run the test drives step by step, as box.run would.
func heldBox0(t *testing.T) *box {
	t.Helper()
	b, _ := box0AfterARun(t)
	b.mu.Lock()
	t.Cleanup(b.mu.Unlock)
	if err := b.awaitNext(); err != nil {
		t.Fatal(err)
	}
	return b
}

// The host sends a kill on another socket than the run's request, at any
// time after it: a kill that reaches the init before the init began the run
// still kills the program, as soon as it runs.
func TestAKillBeforeTheProgramRunsKillsItAsItRuns(t *testing.T) {
	b := heldBox0(t)
	if err := b.kill.send(&initMessage{Op: opKill, Run: b.runs + 1}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the init hears the kill long before the request
	job := executor.NewJob(&spec.RunRequest{Argv: []string{"/bin/sleep", "10"}, Limits: spec.Limits{CPUTime: new(20.0), Processes: new(int64(1))}}, executor.Runtime{})
	r, err := b.begin(job, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.complete(context.Background(), nil)
	if err != nil || res.Verdict != spec.VerdictSignaled || res.ExitCode == nil || *res.ExitCode != -int(syscall.SIGKILL) || res.RealTime > 5 {
		t.Errorf("a program killed before it ran: %+v (exit %v), %v; want Signaled by SIGKILL at once", res, res.ExitCode, err)
	}
}

// The init tells when the current run's program started, and nothing for
// another run.
func TestTheInitTellsWhenTheProgramStarted(t *testing.T) {
	b := heldBox0(t)
	if startNs, _, err := b.whenStarted(b.runs); err != nil || startNs != 0 {
		t.Errorf("an ended run: started at %d, %v; want 0", startNs, err)
	}
	job := executor.NewJob(&spec.RunRequest{Argv: []string{"/bin/sleep", "0.3"}, Limits: spec.Limits{CPUTime: new(1.0), Processes: new(int64(1))}}, executor.Runtime{})
	r, err := b.begin(job, nil)
	if err != nil {
		t.Fatal(err)
	}
	var startNs int64
	for deadline := time.Now().Add(5 * time.Second); startNs == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if startNs, _, err = b.whenStarted(b.runs); err != nil {
			t.Fatal(err)
		}
	}
	if other, _, err := b.whenStarted(b.runs + 1); err != nil || other != 0 {
		t.Errorf("a run not asked for: started at %d, %v; want 0", other, err)
	}
	res, err := r.complete(context.Background(), nil)
	if err != nil || res.Verdict != spec.VerdictOK {
		t.Fatalf("the run: %+v, %v", res, err)
	}
	if startNs == 0 || startNs != r.startNs {
		t.Errorf("the init said the program started at %d; its exit report says %d", startNs, r.startNs)
	}
}
