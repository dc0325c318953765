// Package executortest checks that an executor.Executor behaves as the
// protocol needs, whatever its backend, in the manner of testing/fstest: a
// backend's tests call Conformance on a working instance. It is Linux only.
package executortest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"sandboxd/boxfs"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Conformance runs the cases that hold for every backend on e, which has
// box 0 open and empty and is left with it so. Boxes it opens, it closes.
func Conformance(t *testing.T, e executor.Executor) {
	ctx := context.Background()
	space := func(t *testing.T, box int) boxfs.Space {
		t.Helper()
		info, err := e.Box(box)
		if err != nil {
			t.Fatal(err)
		}
		return boxfs.Space{BoxInfo: info}
	}
	run := func(t *testing.T, req *spec.RunRequest) spec.RunResult {
		t.Helper()
		if req.CPUTime == nil {
			req.CPUTime = new(float64(30)) // generous: the cgroup v2 leg runs under emulation
		}
		if req.Processes == nil {
			req.Processes = new(int64(8))
		}
		if req.RealTime == nil {
			req.RealTime = new(float64(20))
		}
		res, err := executor.Run(ctx, e, executor.DefaultBox, req, executor.Runtime{})
		if err != nil {
			t.Fatalf("run %q: %v", req.Argv, err)
		}
		return res
	}
	sh := func(script string) *spec.RunRequest {
		return &spec.RunRequest{Argv: []string{"/bin/sh", "-c", script}}
	}
	// expect checks the verdict, and the exit code, present exactly for OK and Signaled.
	expect := func(t *testing.T, res spec.RunResult, verdict string, exitCode int) {
		t.Helper()
		want := "none"
		if verdict == spec.VerdictOK || verdict == spec.VerdictSignaled {
			want = strconv.Itoa(exitCode)
		}
		got := "none"
		if res.ExitCode != nil {
			got = strconv.Itoa(*res.ExitCode)
		}
		if res.Verdict != verdict || got != want {
			t.Fatalf("got %s exit code %s, want %s exit code %s (%+v)", res.Verdict, got, verdict, want, res)
		}
	}
	readFile := func(t *testing.T, box int, p string) string {
		t.Helper()
		data, _, _, err := space(t, box).ReadFile(p, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	writeFile := func(t *testing.T, box int, p, content string, mode os.FileMode) {
		t.Helper()
		if _, err := space(t, box).WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("exit code", func(t *testing.T) {
		expect(t, run(t, sh("exit 123")), spec.VerdictOK, 123)
	})
	t.Run("signal", func(t *testing.T) {
		expect(t, run(t, sh("kill -SEGV $$")), spec.VerdictSignaled, -11)
	})
	t.Run("cpu time limit", func(t *testing.T) {
		req := sh("while :; do :; done")
		req.CPUTime = new(float64(0.5))
		res := run(t, req)
		expect(t, res, spec.VerdictCPUTimeLimit, 0)
		// How long the loop takes to burn 0.5 s depends on what else the
		// machine runs; the CPU time it burnt past the limit is what tells
		// how late the kill came (isolate checks every 100 ms).
		if res.CPUTime < 0.45 || res.CPUTime > 1.5 {
			t.Errorf("cpu_time %.3f for a 0.5 s CPU limit", res.CPUTime)
		}
	})
	t.Run("real time limit", func(t *testing.T) {
		req := sh("sleep 10")
		req.RealTime = new(float64(0.3))
		res := run(t, req)
		expect(t, res, spec.VerdictRealTimeLimit, 0)
		if res.RealTime < 0.25 || res.RealTime > 3 {
			t.Errorf("real_time %.3f for a 0.3 s limit", res.RealTime)
		}
	})
	t.Run("idleness time limit", func(t *testing.T) {
		req := sh("sleep 10")
		req.CPUTime, req.IdlenessTime = new(float64(1)), new(float64(0.3))
		res := run(t, req)
		expect(t, res, spec.VerdictIdlenessTimeLimit, 0)
		if res.IdlenessTime < 0.25 || res.RealTime > 3 {
			t.Errorf("idleness_time %.3f, real_time %.3f for a 0.3 s idleness limit", res.IdlenessTime, res.RealTime)
		}
	})
	// tail -c keeps the last bytes of a pipe in its memory, for a third of
	// the CPU time a shell needs to hold them in a $(...) variable: under the
	// emulation of the cgroup v2 leg, the shell outlasted a run's 20 s real
	// time limit.
	const use100MB = `head -c 100000000 /dev/zero | tail -c 100000000 >/dev/null`
	t.Run("memory limit", func(t *testing.T) {
		req := sh(use100MB)
		req.Memory = new(int64(32 << 20))
		expect(t, run(t, req), spec.VerdictMemoryLimitExceeded, 0)
		// Nothing of that run may mark the next one.
		res := run(t, sh("exit 0"))
		expect(t, res, spec.VerdictOK, 0)
	})
	// A limit below what the program's own start takes (its fork and exec
	// are charged to the run) is the program's verdict, not an error.
	t.Run("memory limit too small to start", func(t *testing.T) {
		req := &spec.RunRequest{Argv: []string{"/bin/true"}}
		req.Memory = new(int64(4096))
		res := run(t, req)
		expect(t, res, spec.VerdictMemoryLimitExceeded, 0)
		if res.Memory < 4096 {
			t.Errorf("memory %d, want at least the 4096 bytes of the limit", res.Memory)
		}
		expect(t, run(t, sh("exit 0")), spec.VerdictOK, 0)
	})
	t.Run("memory metric", func(t *testing.T) {
		res := run(t, sh(use100MB))
		expect(t, res, spec.VerdictOK, 0)
		if res.Memory < 100e6 {
			t.Errorf("memory %d for a run that held 100 MB", res.Memory)
		}
		if res = run(t, sh("exit 0")); res.Memory > 20e6 {
			t.Errorf("memory %d for a shell that exits at once, after a run that used 100 MB", res.Memory)
		}
	})
	t.Run("processes limit", func(t *testing.T) {
		req := sh("/bin/true")
		req.Processes = new(int64(1))
		res := run(t, req)
		if res.Verdict != spec.VerdictOK || *res.ExitCode == 0 {
			t.Errorf("with processes_limit 1 the shell must fail to fork: %+v", res)
		}
		req.Processes = new(int64(2))
		expect(t, run(t, req), spec.VerdictOK, 0)
	})
	t.Run("environment given", func(t *testing.T) {
		req := sh(`test "$FOO" = bar && test "${EMPTY+set}" = set && test -z "${HOME+set}${LIBC_FATAL_STDERR_+set}"`)
		req.Env = map[string]string{"FOO": "bar", "EMPTY": ""}
		expect(t, run(t, req), spec.VerdictOK, 0)
	})
	t.Run("environment inherited", func(t *testing.T) {
		t.Setenv("SANDBOXD_CONFORMANCE", "inherited")
		expect(t, run(t, sh(`test "$SANDBOXD_CONFORMANCE" = inherited`)), spec.VerdictOK, 0)
	})
	t.Run("stdio and working directory", func(t *testing.T) {
		writeFile(t, executor.DefaultBox, "in.txt", "input\n", 0o644)
		req := sh("pwd; cat; echo err >&2")
		req.Stdio = spec.Stdio{Stdin: "in.txt", Stdout: "out.txt", Stderr: "/space/out.txt"}
		expect(t, run(t, req), spec.VerdictOK, 0)
		if got := readFile(t, executor.DefaultBox, "out.txt"); got != "/space\ninput\nerr\n" {
			t.Errorf("out.txt: %q", got)
		}
	})
	t.Run("PATH lookup", func(t *testing.T) {
		req := &spec.RunRequest{Argv: []string{"true"}, Env: map[string]string{"PATH": "/usr/bin:/bin"}}
		expect(t, run(t, req), spec.VerdictOK, 0)
		writeFile(t, executor.DefaultBox, "bin/hello", "#!/bin/sh\necho hi >hi.txt\n", 0o755)
		req = &spec.RunRequest{Argv: []string{"hello"}, Env: map[string]string{"PATH": "/space/bin"}}
		expect(t, run(t, req), spec.VerdictOK, 0)
		if got := readFile(t, executor.DefaultBox, "hi.txt"); got != "hi\n" {
			t.Errorf("hi.txt: %q", got)
		}
	})
	t.Run("missing program", func(t *testing.T) {
		for _, argv0 := range []string{"no-such-program", "/space/no-such-program"} {
			req := &spec.RunRequest{Argv: []string{argv0}, Limits: spec.Limits{CPUTime: new(float64(1)), Processes: new(int64(1))}}
			if _, err := executor.Run(ctx, e, executor.DefaultBox, req, executor.Runtime{}); spec.CodeOf(err) != spec.CodeExecFailed {
				t.Errorf("run %q: got %v, want exec_failed", argv0, err)
			}
		}
	})
	t.Run("nothing outlives a run", func(t *testing.T) {
		res := run(t, sh("sleep 30 & exit 0"))
		expect(t, res, spec.VerdictOK, 0)
		if res.RealTime > 3 {
			t.Errorf("real_time %.3f: the run waited for its background process", res.RealTime)
		}
	})
	t.Run("tmp persists until reset", func(t *testing.T) {
		expect(t, run(t, sh("echo b >/tmp/g && echo a >/space/f")), spec.VerdictOK, 0)
		expect(t, run(t, sh("test -f /tmp/g")), spec.VerdictOK, 0)
		if err := e.ResetBox(executor.DefaultBox); err != nil {
			t.Fatal(err)
		}
		expect(t, run(t, sh("test -e /tmp/g || test -e /space/f")), spec.VerdictOK, 1)
		if entries, err := space(t, executor.DefaultBox).ListFiles(""); err != nil || len(entries) != 0 {
			t.Errorf("/space after reset_box: %v, %v", entries, err)
		}
	})
	t.Run("host mounts are out of reach", func(t *testing.T) {
		// A tmpfs below a shown directory is read-only in the box (or not
		// shown), and /dev/shm is the box's own, not the host's.
		d, err := os.MkdirTemp("/var/tmp", "sandboxd-conformance-") // /tmp is the box's own
		if err == nil {
			err = os.Chmod(d, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(d)
		sub := filepath.Join(d, "sub")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m,mode=0777"); err != nil {
			t.Fatal(err)
		}
		defer unix.Unmount(sub, unix.MNT_DETACH)
		id, err := e.OpenBox(spec.BoxOptions{Dirs: append(slices.Clone(spec.DefaultDirs), d)})
		if err != nil {
			t.Fatal(err)
		}
		defer e.CloseBox(id)
		shm := filepath.Join("/dev/shm", filepath.Base(d))
		defer os.Remove(shm)
		res, err := executor.Run(ctx, e, id, &spec.RunRequest{Argv: []string{"/bin/sh", "-c", "touch " + shm + " && ! touch " + sub + "/x 2>/dev/null"},
			Limits: spec.Limits{CPUTime: new(float64(5)), Processes: new(int64(2))}}, executor.Runtime{})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, res, spec.VerdictOK, 0)
		for _, p := range []string{filepath.Join(sub, "x"), shm} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("a program wrote %s on the host: %v", p, err)
			}
		}
	})
	t.Run("boxes are apart", func(t *testing.T) {
		id, err := e.OpenBox(spec.BoxOptions{})
		if err != nil {
			t.Fatal(err)
		}
		dir := space(t, id).SpaceDir
		writeFile(t, id, "mine", "x", 0o644)
		res, err := executor.Run(ctx, e, id, &spec.RunRequest{Argv: []string{"/bin/sh", "-c", "test -f mine && ! test -e /space/in.txt"},
			Limits: spec.Limits{CPUTime: new(float64(1)), Processes: new(int64(2))}}, executor.Runtime{})
		if err != nil {
			t.Fatal(err)
		}
		expect(t, res, spec.VerdictOK, 0)
		if _, err := os.Stat(filepath.Join(space(t, executor.DefaultBox).SpaceDir, "mine")); !os.IsNotExist(err) {
			t.Errorf("a file of box %d is in box 0: %v", id, err)
		}
		if err := e.CloseBox(id); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("close_box left %s: %v", dir, err)
		}
	})
}
