package isolate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"os/exec"

	"sandboxd/boxfs"
	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/executor/executortest"
	"sandboxd/spec"
)

// fakeIsolate is an isolate behind a wrapper that logs its calls: the
// stand-in testdata/fake-isolate/isolate (told where to keep its boxes), or
// a real one (loggedIsolate).
//
// The stand-in stays for what a real isolate cannot show: the exact
// command lines and environment sandboxd gives it, the meta files of every
// status with fixed figures (isolate's internal errors among them), both
// major versions on one host, and leftovers made to order. What isolate
// does with those is the conformance cases', on the real one.
type fakeIsolate struct {
	path, root, log, state, locks string
	// firstBox is the lowest isolate box id sandboxd takes: 0 with the
	// stand-in, realFirstBox with a real isolate.
	firstBox int
}

func newFakeIsolate(t *testing.T, version string) *fakeIsolate {
	t.Helper()
	dir := t.TempDir()
	fake, err := filepath.Abs("../../testdata/fake-isolate/isolate")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIsolate{
		path:  filepath.Join(dir, "isolate"),
		root:  filepath.Join(dir, "root"),
		log:   filepath.Join(dir, "calls"),
		state: filepath.Join(dir, "state"),
		locks: filepath.Join(dir, "locks"),
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nFAKE_ISOLATE_LOG=%q FAKE_ISOLATE_ROOT=%q FAKE_ISOLATE_VERSION=%q exec %q \"$@\"\n", f.log, f.root, version, fake)
	if err := os.WriteFile(f.path, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// loggedIsolate is the real isolate the tests run against (realIsolate)
// behind a wrapper that logs its calls as the stand-in does, or, where there
// is none, the stand-in as isolate 1.10.1. major is its major version.
func loggedIsolate(t *testing.T) (f *fakeIsolate, major int) {
	t.Helper()
	path := os.Getenv("SANDBOXD_ISOLATE")
	if path == "" {
		path, _ = exec.LookPath("isolate")
	}
	if path == "" {
		return newFakeIsolate(t, "1.10.1"), 1
	}
	path, major = realIsolate(t)
	t.Logf("isolate %s, behind a wrapper that logs its calls", path)
	dir := t.TempDir()
	f = &fakeIsolate{
		path:  filepath.Join(dir, "isolate"),
		log:   filepath.Join(dir, "calls"),
		state: filepath.Join(dir, "state"),
		locks: filepath.Join(dir, "locks"),
		// Uids 60000 + id clear of other tests' boxes.
		firstBox: realFirstBox,
	}
	wrapper := fmt.Sprintf("#!/bin/sh\nfor arg; do printf '%%s\\n' \"$arg\"; done >>%q\necho --end-- >>%q\nexec %q \"$@\"\n", f.log, f.log, path)
	if err := os.WriteFile(f.path, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	return f, major
}

// realFirstBox is the lowest isolate box id the tests take on a real isolate.
const realFirstBox = 850

func (f *fakeIsolate) start(t *testing.T) *Executor {
	t.Helper()
	x, err := New(Config{Path: f.path, StateDir: f.state, FirstUID: 60000, FirstBox: f.firstBox, Dirs: spec.DefaultDirs, LockDir: f.locks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

// calls returns the command lines isolate was called with since the last
// call of calls, each as its arguments.
func (f *fakeIsolate) calls(t *testing.T) [][]string {
	t.Helper()
	data, err := os.ReadFile(f.log)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.Remove(f.log)
	var calls [][]string
	var cur []string
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "--end--" {
			calls = append(calls, cur)
			cur = nil
		} else if line != "" || cur != nil {
			cur = append(cur, line)
		}
	}
	return calls
}

// cgArgs is what sandboxd should put before the box id: --cg when isolate
// of that major version can use this host's cgroups.
func cgArgs(major int) []string {
	v2, _, err := cgroup.Detect()
	if err == nil && (major >= 2) == v2 {
		return []string{"--cg"}
	}
	return nil
}

func expectCalls(t *testing.T, got [][]string, want ...[]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("isolate was called %d times, want %d:\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
	for i := range want {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("call %d:\ngot  %q\nwant %q", i, got[i], want[i])
		}
	}
}

func cmdLine(cg []string, parts ...string) []string {
	return append(slices.Clone(cg), parts...)
}

// installFake puts an executable file named after a golden meta file into a
// box, so that sandboxd's PATH lookup finds it and the fake picks that meta.
func installFake(t *testing.T, x *Executor, box int, path string) {
	t.Helper()
	info, err := x.Box(box)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (boxfs.Space{BoxInfo: info}).WriteFile(path, []byte("#!/bin/false\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestIsolateCommandLines(t *testing.T) {
	f := newFakeIsolate(t, "1.10.1")
	x := f.start(t)
	cg := cgArgs(1)
	expectCalls(t, f.calls(t), []string{"--version"}, cmdLine(cg, "--box-id=0", "--init"))

	info, _ := x.Box(0)
	if info.UID != 60000 || info.GID != 60000 {
		t.Errorf("box 0 belongs to %d:%d, want isolate box 0's 60000:60000", info.UID, info.GID)
	}
	meta := filepath.Join(f.state, "boxes", "0", "meta")
	space := filepath.Join(f.state, "boxes", "0", "space")
	tmp := filepath.Join(f.state, "boxes", "0", "tmp")
	for _, d := range []string{space, tmp} {
		if fi, err := os.Stat(d); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 60000 {
			t.Errorf("%s must exist and belong to the box user: %v", d, err)
		}
	}
	installFake(t, x, 0, "bin/ok")
	req := &spec.RunRequest{
		Argv:  []string{"ok", "a b", ""},
		Env:   map[string]string{"PATH": "/space/bin:/usr/bin", "A": "1", "EMPTY": ""},
		Stdio: spec.Stdio{Stdin: "in", Stdout: "out/o.txt", Stderr: "/space/out/o.txt"},
		Limits: spec.Limits{
			RealTime: new(float64(2.5)), CPUTime: new(float64(1.1)), IdlenessTime: new(float64(0.5)),
			Memory: new(int64(1000000)), Processes: new(int64(3)),
		},
		ProcessLimits: spec.ProcessLimits{FileSize: new(int64(1000)), OpenFiles: new(int64(5)), Stack: new(int64(100000))},
	}
	res, err := executor.Run(context.Background(), x, 0, req, executor.Runtime{})
	if err != nil {
		t.Fatal(err)
	}
	memArg := "--cg-mem=977"
	if cg == nil {
		memArg = "--mem=977"
	}
	expectCalls(t, f.calls(t), cmdLine(cg, "--box-id=0", "--meta="+meta,
		"--time=1.100", "--wall-time=1.600", memArg, "--processes=3", "--open-files=5", "--fsize=1", "--stack=98",
		"--dir=/space="+space+":rw", "--dir=/tmp="+tmp+":rw", "--dir=/dev:dev:norec", "--dir=/dev/shm="+tmp+":rw",
		"--dir=/usr:norec:maybe", "--dir=/bin:norec:maybe", "--dir=/lib:norec:maybe", "--dir=/lib64:norec:maybe",
		"--chdir=/space", "--stdin=/space/in", "--stdout=/space/out/o.txt", "--stderr-to-stdout",
		"--full-env", "--env=LIBC_FATAL_STDERR_", "--silent", "--run", "--", "/space/bin/ok", "a b", ""))
	if res.Verdict != spec.VerdictOK || *res.ExitCode != 0 || res.Memory != 528<<10 {
		t.Errorf("ok.meta: got %+v, want OK, exit code 0, memory %d", res, 528<<10)
	}
	env, err := os.ReadFile(f.log + ".env")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, kv := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		if !strings.HasPrefix(kv, "PWD=") { // exported by the fake's shell
			got = append(got, kv)
		}
	}
	slices.Sort(got)
	if want := []string{"A=1", "EMPTY=", "PATH=/space/bin:/usr/bin"}; !slices.Equal(got, want) {
		t.Errorf("isolate's environment: got %q, want exactly %q", got, want)
	}

	// No memory, real time or idleness limit, no stdio, inherited environment.
	t.Setenv("SANDBOXD_TEST_INHERITED", "yes")
	req = &spec.RunRequest{Argv: []string{"/space/bin/ok"}, Limits: spec.Limits{CPUTime: new(float64(0.0001)), Processes: new(int64(1))}}
	if _, err := executor.Run(context.Background(), x, 0, req, executor.Runtime{}); err != nil {
		t.Fatal(err)
	}
	memArgs := []string{"--cg-mem=2147483647"}
	if cg == nil {
		memArgs = nil
	}
	want := cmdLine(cg, "--box-id=0", "--meta="+meta, "--time=0.001")
	want = append(want, memArgs...)
	want = append(want, "--processes=1", "--open-files=1024", "--fsize=524288",
		"--dir=/space="+space+":rw", "--dir=/tmp="+tmp+":rw", "--dir=/dev:dev:norec", "--dir=/dev/shm="+tmp+":rw",
		"--dir=/usr:norec:maybe", "--dir=/bin:norec:maybe", "--dir=/lib:norec:maybe", "--dir=/lib64:norec:maybe",
		"--chdir=/space", "--stdin=/dev/null", "--stdout=/dev/null", "--stderr=/dev/null",
		"--full-env", "--env=LIBC_FATAL_STDERR_", "--silent", "--run", "--", "/space/bin/ok")
	expectCalls(t, f.calls(t), want)
	if env, _ := os.ReadFile(f.log + ".env"); !strings.Contains(string(env), "SANDBOXD_TEST_INHERITED=yes\n") {
		t.Errorf("a run without env must pass sandboxd's environment; isolate got:\n%s", env)
	}

	// Other directories than isolate's defaults, and the nix store.
	id, err := x.OpenBox(spec.BoxOptions{Dirs: []string{"/usr", "/etc"}})
	if err != nil {
		t.Fatal(err)
	}
	installFake(t, x, id, "ok")
	req = &spec.RunRequest{Argv: []string{"./ok"}, Limits: spec.Limits{CPUTime: new(float64(1)), Processes: new(int64(1))}}
	if _, err := executor.Run(context.Background(), x, id, req, executor.Runtime{Views: []executor.HostView{{Path: "/nix/store"}}}); err != nil {
		t.Fatal(err)
	}
	calls := f.calls(t)
	expectCalls(t, calls[:1], cmdLine(cg, "--box-id=1", "--init"))
	dir := filepath.Join(f.state, "boxes", "1")
	i := slices.Index(calls[1], "--dir=/space="+dir+"/space:rw")
	if i < 0 {
		t.Fatalf("run in box 1 does not bind its /space: %q", calls[1])
	}
	if got, want := calls[1][i:i+10], []string{"--dir=/space=" + dir + "/space:rw", "--dir=/tmp=" + dir + "/tmp:rw",
		"--dir=/dev:dev:norec", "--dir=/dev/shm=" + dir + "/tmp:rw", "--dir=/bin=", "--dir=/lib=", "--dir=/lib64=",
		"--dir=/usr:norec:maybe", "--dir=/etc:norec:maybe", "--dir=/nix/store:norec"}; !slices.Equal(got, want) {
		t.Errorf("directories of box 1: got %q, want %q", got, want)
	}
	if calls[1][len(calls[1])-1] != "/space/ok" {
		t.Errorf("./ok must run as /space/ok: %q", calls[1])
	}

	if err := x.CloseBox(id); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f.calls(t), cmdLine(cg, "--box-id=1", "--cleanup"))
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("close_box left %s: %v", dir, err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	expectCalls(t, f.calls(t), cmdLine(cg, "--box-id=0", "--cleanup"))
}

func TestIsolateVerdicts(t *testing.T) {
	f := newFakeIsolate(t, "1.10.1")
	x := f.start(t)
	exit := func(c int) *int { return &c }
	for _, c := range []struct {
		prog    string // names the golden meta file
		limits  spec.Limits
		verdict string
		exit    *int
		errCode spec.Code
		metrics spec.Metrics
	}{
		{prog: "ok", verdict: spec.VerdictOK, exit: exit(0), metrics: spec.Metrics{Memory: 528 << 10}},
		{prog: "re", verdict: spec.VerdictOK, exit: exit(3), metrics: spec.Metrics{RealTime: 0.011, CPUTime: 0.001, IdlenessTime: 0.01, Memory: 500 << 10}},
		{prog: "sg", verdict: spec.VerdictSignaled, exit: exit(-11), metrics: spec.Metrics{CPUTime: 0.001, Memory: 392 << 10}},
		{prog: "to-cpu", limits: spec.Limits{CPUTime: new(float64(0.5)), RealTime: new(float64(3))}, verdict: spec.VerdictCPUTimeLimit,
			metrics: spec.Metrics{RealTime: 0.6, CPUTime: 0.587, IdlenessTime: 0.013, Memory: 256 << 10}},
		{prog: "to-wall", limits: spec.Limits{CPUTime: new(float64(1)), RealTime: new(float64(0.3))}, verdict: spec.VerdictRealTimeLimit,
			metrics: spec.Metrics{RealTime: 0.4, CPUTime: 0.001, IdlenessTime: 0.399, Memory: 384 << 10}},
		// The wall kill came from CPU + idleness (0.1 + 0.3), sooner than the real time limit.
		{prog: "to-wall", limits: spec.Limits{CPUTime: new(float64(0.1)), IdlenessTime: new(float64(0.3)), RealTime: new(float64(5))}, verdict: spec.VerdictIdlenessTimeLimit,
			metrics: spec.Metrics{RealTime: 0.4, CPUTime: 0.001, IdlenessTime: 0.399, Memory: 384 << 10}},
		// The real time limit came first.
		{prog: "to-wall", limits: spec.Limits{CPUTime: new(float64(0.1)), IdlenessTime: new(float64(0.3)), RealTime: new(float64(0.35))}, verdict: spec.VerdictRealTimeLimit,
			metrics: spec.Metrics{RealTime: 0.4, CPUTime: 0.001, IdlenessTime: 0.399, Memory: 384 << 10}},
		{prog: "oom", limits: spec.Limits{Memory: new(int64(32 << 20))}, verdict: spec.VerdictMemoryLimitExceeded,
			metrics: spec.Metrics{RealTime: 0.15, CPUTime: 0.142, IdlenessTime: 0.008, Memory: 32 << 20}},
		// isolate 1.x on cgroup v1 refuses a limit below what its box's process
		// already holds: the program's start does not fit.
		{prog: "xx-memory-limit", limits: spec.Limits{Memory: new(int64(4000))}, verdict: spec.VerdictMemoryLimitExceeded,
			metrics: spec.Metrics{Memory: 4096}},
		{prog: "xx", errCode: spec.CodeExecFailed},
		{prog: "xx-execve", errCode: spec.CodeExecFailed},
		{prog: "xx-internal", errCode: spec.CodeInternal},
	} {
		t.Run(c.prog+"/"+c.verdict, func(t *testing.T) {
			installFake(t, x, 0, c.prog)
			req := &spec.RunRequest{Argv: []string{"/space/" + c.prog}, Limits: c.limits}
			if req.CPUTime == nil {
				req.CPUTime = new(float64(10))
			}
			req.Processes = new(int64(1))
			res, err := executor.Run(context.Background(), x, 0, req, executor.Runtime{})
			if c.errCode != "" {
				if err == nil || spec.CodeOf(err) != c.errCode {
					t.Fatalf("got %+v, %v; want error %s", res, err, c.errCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict != c.verdict || (res.ExitCode == nil) != (c.exit == nil) || (c.exit != nil && *res.ExitCode != *c.exit) {
				t.Errorf("got verdict %s exit code %v, want %s %v", res.Verdict, res.ExitCode, c.verdict, c.exit)
			}
			const eps = 1e-9
			m := res.Metrics
			if d := m.RealTime - c.metrics.RealTime + m.CPUTime - c.metrics.CPUTime + m.IdlenessTime - c.metrics.IdlenessTime; d > eps || d < -eps || m.Memory != c.metrics.Memory {
				t.Errorf("metrics: got %+v, want %+v", m, c.metrics)
			}
		})
	}
}

// A program of a group that isolate could not start within its memory
// limit makes the group exec_failed, as on the native backend.
func TestIsolateGroupProgramOverMemoryAtStart(t *testing.T) {
	x := newFakeIsolate(t, "1.10.1").start(t)
	box, err := x.OpenBox(spec.BoxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	installFake(t, x, 0, "ok")
	installFake(t, x, box, "xx-memory-limit")
	member := func(box int, prog string, memory int64) executor.GroupMember {
		req := &spec.RunRequest{Argv: []string{"/space/" + prog}}
		req.CPUTime, req.Processes, req.Memory = new(float64(1)), new(int64(1)), new(memory)
		return executor.GroupMember{Box: box, Job: executor.NewJob(req, executor.Runtime{})}
	}
	g := &executor.Group{Members: []executor.GroupMember{member(0, "ok", 64<<20), member(box, "xx-memory-limit", 4096)}}
	_, err = x.RunGroup(context.Background(), g)
	if want := `programs[1]: "/space/xx-memory-limit" could not be started within its memory_limit of 4096 bytes`; spec.CodeOf(err) != spec.CodeExecFailed || err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v, want exec_failed with %q", err, want)
	}
}

func TestIsolateMetaSplitsAtFirstColon(t *testing.T) {
	m, err := parseMeta([]byte("status:XX\nmessage:open(\"/space/a:b\"): No such file or directory\nnew-key:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := `open("/space/a:b"): No such file or directory`; m.Message != want {
		t.Errorf("message: got %q, want %q", m.Message, want)
	}
	// isolate 1.x's cgroup errors quote the value written, newline and all.
	m, err = parseMeta([]byte("status:XX\nmessage:Cannot set /cg/memory.limit_in_bytes to 4096\n: Device or resource busy\n"))
	if want := "Cannot set /cg/memory.limit_in_bytes to 4096\n: Device or resource busy"; err != nil || m.Message != want {
		t.Errorf("message: got %q, %v; want %q", m.Message, err, want)
	}
	if _, err := parseMeta([]byte("time:fast\n")); err == nil {
		t.Error("a meta file with a bad number must be an error")
	}
}

// A program that is not an executable file in the box never reaches isolate.
func TestIsolateMissingProgram(t *testing.T) {
	f, _ := loggedIsolate(t)
	x := f.start(t)
	installFake(t, x, 0, "ok")
	info, _ := x.Box(0)
	if err := os.WriteFile(filepath.Join(info.SpaceDir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.calls(t)
	for _, argv0 := range []string{"nope", "/space/nope", "data", "/space/data", "/etc/passwd", "/space"} {
		req := &spec.RunRequest{Argv: []string{argv0}, Env: map[string]string{"PATH": "/space:/usr/bin"}, Limits: spec.Limits{CPUTime: new(float64(1)), Processes: new(int64(1))}}
		if _, err := executor.Run(context.Background(), x, 0, req, executor.Runtime{}); spec.CodeOf(err) != spec.CodeExecFailed {
			t.Errorf("run %q: got %v, want an exec_failed error", argv0, err)
		}
	}
	if calls := f.calls(t); len(calls) != 0 {
		t.Errorf("isolate must not run for a program that is not in the box: %q", calls)
	}
}

func TestIsolateRecoversLeftovers(t *testing.T) {
	f := newFakeIsolate(t, "1.10.1")
	cg := cgArgs(1)
	// A killed instance left box 3 of the state dir, which used isolate box 5,
	// and isolate box 0 (it was made by someone else, say).
	stale := filepath.Join(f.state, "boxes", "3")
	if err := os.MkdirAll(filepath.Join(stale, "space"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, idFile), []byte("5"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"0", "5"} {
		if err := os.MkdirAll(filepath.Join(f.root, id, "box"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	x := f.start(t)
	expectCalls(t, f.calls(t), []string{"--version"},
		cmdLine(cg, "--box-id=5", "--cleanup"),
		cmdLine(cg, "--box-id=0", "--init"),
		cmdLine(cg, "--box-id=0", "--cleanup"),
		cmdLine(cg, "--box-id=0", "--init"))
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale box dir %s is still there: %v", stale, err)
	}
	if _, err := x.Box(0); err != nil {
		t.Fatal(err)
	}
}

// A box takes the lowest isolate box id that no sandboxd holds, and runs as
// isolate's uid of that box.
func TestIsolateBoxIDs(t *testing.T) {
	f, major := loggedIsolate(t)
	x := f.start(t)
	cg := cgArgs(major)
	first := f.firstBox
	boxID := func(n int) string { return "--box-id=" + strconv.Itoa(first+n) }
	// Another sandboxd holds isolate box first+2.
	if err := os.MkdirAll(f.locks, 0o700); err != nil {
		t.Fatal(err)
	}
	other, err := executor.TryLock(filepath.Join(f.locks, strconv.Itoa(first+2)))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	f.calls(t)
	open := func() int {
		t.Helper()
		id, err := x.OpenBox(spec.BoxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := open(), open()
	expectCalls(t, f.calls(t), cmdLine(cg, boxID(1), "--init"), cmdLine(cg, boxID(3), "--init"))
	if info, _ := x.Box(b); a != 1 || b != 2 || info.UID != 60000+first+3 {
		t.Errorf("boxes %d and %d (uid %d), want 1 and 2 (uid %d)", a, b, info.UID, 60000+first+3)
	}
	if err := x.CloseBox(a); err != nil {
		t.Fatal(err)
	}
	if c := open(); c != 1 {
		t.Errorf("box %d, want the lowest free id 1", c)
	}
	expectCalls(t, f.calls(t), cmdLine(cg, boxID(1), "--cleanup"), cmdLine(cg, boxID(1), "--init"))
	if err := x.CloseBox(0); spec.CodeOf(err) != spec.CodeInvalidArgument {
		t.Errorf("close_box 0: got %v, want invalid_argument", err)
	}
	if err := x.CloseBox(7); spec.CodeOf(err) != spec.CodeNoSuchBox {
		t.Errorf("close_box 7: got %v, want no_such_box", err)
	}
}

// isolate keeps a box's cgroup from --init to --cleanup, with figures it
// does not reset between runs: the OOM-kill count (every version) and the
// peak memory (2.x). The box is made afresh before a run that would see them.
func TestIsolateRenewsCgroup(t *testing.T) {
	run, renew := []string{"--run"}, []string{"--cleanup", "--init", "--run"}
	for _, c := range []struct {
		version string
		want    [4][]string // isolate commands for runs of ok, oom, ok, ok
	}{
		{"1.10.1", [4][]string{run, run, renew, run}},
		{"2.0", [4][]string{run, renew, renew, renew}},
	} {
		t.Run(c.version, func(t *testing.T) {
			f := newFakeIsolate(t, c.version)
			x := f.start(t)
			x.cg = true // as on a host whose cgroup version suits this isolate
			installFake(t, x, 0, "ok")
			installFake(t, x, 0, "oom")
			f.calls(t)
			for i, prog := range []string{"ok", "oom", "ok", "ok"} {
				req := &spec.RunRequest{Argv: []string{"/space/" + prog}, Limits: spec.Limits{CPUTime: new(float64(1)), Processes: new(int64(1))}}
				if _, err := executor.Run(context.Background(), x, 0, req, executor.Runtime{}); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, call := range f.calls(t) {
					if call[0] != "--cg" || call[1] != "--box-id=0" {
						t.Fatalf("call %q is not on isolate box 0 with --cg", call)
					}
					cmd := call[len(call)-1]
					if slices.Contains(call, "--run") {
						cmd = "--run"
					}
					got = append(got, cmd)
				}
				if !slices.Equal(got, c.want[i]) {
					t.Errorf("run %d (%s): isolate commands %q, want %q", i, prog, got, c.want[i])
				}
			}
		})
	}
}

// --isolate-first-box: box 0 is isolate's box of that id, and runs as its uid.
func TestIsolateFirstBox(t *testing.T) {
	f, major := loggedIsolate(t)
	f.firstBox += 40
	x := f.start(t)
	want := [][]string{{"--version"}}
	if cg := cgArgs(major); cg != nil && major >= 2 {
		want = append(want, []string{"--print-cg-root"}) // see TestIsolate2NeedsMemoryInItsCgroupRoot
	}
	expectCalls(t, f.calls(t), append(want, cmdLine(cgArgs(major), "--box-id="+strconv.Itoa(f.firstBox), "--init"))...)
	if info, _ := x.Box(0); info.UID != 60000+f.firstBox {
		t.Errorf("box 0 runs as uid %d, want isolate box %d's %d", info.UID, f.firstBox, 60000+f.firstBox)
	}
}

// isolate binds the shown dirs itself, with the mounts below them: those
// around or inside the state dir are refused as the native backend refuses
// them, at start and at open_box.
func TestIsolateRefusesDirsAroundOrInsideTheStateDir(t *testing.T) {
	f, _ := loggedIsolate(t)
	cfg := Config{Path: f.path, StateDir: f.state, FirstUID: 60000, Dirs: []string{"/usr", filepath.Dir(f.state)}, LockDir: f.locks}
	if x, err := New(cfg); err == nil {
		x.Close()
		t.Fatalf("isolate started with dirs %q around its state dir %s", cfg.Dirs, f.state)
	}
	x := f.start(t)
	_, err := x.OpenBox(spec.BoxOptions{Dirs: []string{"/usr", filepath.Join(f.state, "boxes")}})
	if spec.CodeOf(err) != spec.CodeInvalidArgument {
		t.Errorf("open_box with a dir inside the state dir: %v, want invalid_argument", err)
	}
}

// realIsolate finds the real isolate the tests run against: SANDBOXD_ISOLATE
// (make test sets it to the build that suits the host's cgroups), else
// isolate on PATH. Without one the test is skipped; one named by
// SANDBOXD_ISOLATE that cannot use this host's cgroups fails it, since
// make test would then pass without having tested isolate.
func realIsolate(t *testing.T) (path string, major int) {
	t.Helper()
	path = os.Getenv("SANDBOXD_ISOLATE")
	named := path != ""
	if !named {
		var err error
		if path, err = exec.LookPath("isolate"); err != nil {
			t.Skip("no isolate binary: put isolate on PATH or set SANDBOXD_ISOLATE=/path/to/isolate")
		}
	}
	major, err := majorVersion(path)
	if err != nil {
		t.Fatal(err)
	}
	if !usesHostCgroups(major) {
		host := "v1"
		if v2, _, _ := cgroup.Detect(); v2 {
			host = "v2"
		}
		msg := fmt.Sprintf("%s is isolate %d.x, which cannot use this host's cgroup %s (isolate 1.x drives cgroup v1, 2.x cgroup v2)", path, major, host)
		if named {
			t.Fatalf("SANDBOXD_ISOLATE: %s", msg)
		}
		t.Skipf("%s: put one that can on PATH or set SANDBOXD_ISOLATE=/path/to/isolate", msg)
	}
	return path, major
}

// The conformance cases, on a real isolate when there is one.
func TestIsolateConformance(t *testing.T) {
	path, _ := realIsolate(t)
	// Box uids from 60500 on: the native backend's tests, which go test may
	// run at the same time, use 60000 and up, and processes_limit (isolate's
	// RLIMIT_NPROC) counts every process of a uid.
	x, err := New(Config{Path: path, StateDir: t.TempDir(), FirstUID: 60000, FirstBox: 500, Dirs: spec.DefaultDirs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("isolate %s, cgroups: %v", path, x.cg)
	executortest.Conformance(t, x)
}

// isolate 2.x makes its boxes' groups in its cgroup root, and --init works
// there whatever the root delegates; but without the memory controller
// every run fails. sandboxd refuses to start on such a root, saying which
// and what to set, rather than answer every run with an internal error.
func TestIsolate2NeedsMemoryInItsCgroupRoot(t *testing.T) {
	path, major := realIsolate(t)
	if major < 2 {
		t.Skipf("%s is isolate %d.x: only 2.x makes its groups in one cgroup root (on cgroup v2: the cgroup v2 guest of make test)", path, major)
	}
	root, err := cgroupRoot(path)
	if err != nil {
		t.Fatal(err)
	}
	control := filepath.Join(root, "cgroup.subtree_control")
	if err := os.WriteFile(control, []byte("-memory"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(control, []byte("+memory"), 0o644); err != nil {
			t.Error(err)
		}
	})
	x, err := New(Config{Path: path, StateDir: t.TempDir(), FirstUID: 60000, FirstBox: 500, Dirs: spec.DefaultDirs})
	if err == nil {
		x.Close()
		t.Fatalf("sandboxd started on isolate's cgroup root %s without the memory controller", root)
	}
	for _, want := range []string{root, "memory controller", "+memory"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
}
