package native

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"sandboxd/executor"
	"sandboxd/executor/executortest"
)

// fdTarget is what fd points to, as /proc/self/fd shows it.
func fdTarget(t *testing.T, fd int) string {
	t.Helper()
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	return target
}

// The program's fds are placed whatever the numbers of the files given for
// them: a file already at a lower fd than its place, files each at another's
// place, the report pipe and the executable among the places, gaps
// (-1) over fds the starter holds. In a box the files the init passes lie
// above every place a program can ask for (0 to 9), so only a starter
// outside one can test these cases.
func TestProgramFilesLandInPlaceWhateverTheirNumbers(t *testing.T) {
	out, err := os.CreateTemp(t.TempDir(), "fds")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	var pipes []int
	for i := 0; i < 4; i++ {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		defer unix.Close(p[0])
		defer unix.Close(p[1])
		pipes = append(pipes, p[:]...)
	}
	var own [2]int // a pipe whose read end stays where it is
	if err := unix.Pipe2(own[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(own[0])
	defer unix.Close(own[1])
	exe, err := os.Open("/bin/ls")
	if err != nil {
		t.Fatal(err)
	}
	defer exe.Close()
	// A hole below the highest place, where start's report pipe lands.
	hole, err := unix.FcntlInt(uintptr(pipes[0]), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	size := slices.Max(append(slices.Clone(pipes), own[0], int(exe.Fd()), hole)) + 2
	unix.Close(hole)
	// What the test's own process inherited is no file of the program's.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err == nil && fd >= size {
			unix.CloseOnExec(fd)
		}
	}

	files := make([]int, size)
	for i := range files {
		files[i] = -1 // closing fds the test holds
	}
	files[1] = int(out.Fd())
	// Each pipe end goes to the place of the next one: every place but the
	// last is held by another file, and the last place is above them all.
	for k, fd := range pipes {
		place := size - 1
		if k+1 < len(pipes) {
			place = pipes[k+1]
		}
		files[place] = fd
	}
	files[int(exe.Fd())] = pipes[0] // the executable's place too
	files[0] = pipes[len(pipes)-1]  // a file far above its place
	files[own[0]] = own[0]          // in its place, close-on-exec in the starter
	want := map[int]string{}
	for i, fd := range files {
		if fd >= 0 {
			want[i] = fdTarget(t, fd)
		}
	}

	uid := executortest.UIDs(8) + executor.MaxBoxes - 1
	p := &program{path: "/bin/ls", execFD: int(exe.Fd()), argv: []string{"ls", "-l", "/proc/self/fd"},
		files: files, dir: "/", uid: uid, gid: uid, runGroup: noRunGroup}
	listing := runWritingTo(t, p, out)
	got := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(listing), "\n")[1:] { // "total 0" first
		f := strings.Fields(line)
		var fd int
		fmt.Sscan(f[len(f)-3], &fd)
		if target := f[len(f)-1]; !strings.HasPrefix(target, "/proc/") { // ls's own of /proc/self/fd
			got[fd] = target
		}
	}
	for fd, target := range want {
		if fd == 1 {
			continue // the listing: a file of the test's
		}
		if got[fd] != target {
			t.Errorf("fd %d is %q, want %q", fd, got[fd], target)
		}
	}
	for fd, target := range got {
		if _, ok := want[fd]; !ok {
			t.Errorf("fd %d (%s) is open, and was given no file", fd, target)
		}
	}
	// The report pipe's end was among the places too: a failed exec is
	// still told.
	missing := *p
	missing.path, missing.execFD = "/nonexistent", -1
	var se *spawnError
	if _, err := missing.start(); !errors.As(err, &se) || se.Step != stepExec || se.Errno != unix.ENOENT {
		t.Errorf("exec of a missing file: %v, want its failure to execute: ENOENT", err)
	}
	t.Logf("pipes %v and %d, executable %d, report pipe at %d; files %v; program's fds %v", pipes, own[0], exe.Fd(), hole, files, got)
}

// runProgram starts p, a shell script writing to a file, waits for it and
// returns what it wrote; the box user is nobody, the directory /.
func runProgram(t *testing.T, p *program) string {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := out.Chmod(0o666); err != nil {
		t.Fatal(err)
	}
	p.files = append([]int{int(devNull(t).Fd()), int(out.Fd()), int(out.Fd())}, p.files[3:]...)
	p.dir, p.uid, p.gid, p.runGroup = "/", 65534, 65534, noRunGroup
	return runWritingTo(t, p, out)
}

// runWritingTo starts p, waits for it to exit 0 and returns what it wrote
// to out.
func runWritingTo(t *testing.T, p *program, out *os.File) string {
	t.Helper()
	pid, err := p.start()
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	var status unix.WaitStatus
	if _, err := unix.Wait4(pid, &status, 0, nil); err != nil || status.ExitStatus() != 0 {
		t.Fatalf("%s: %v, status %v", p.argv[0], err, status)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func devNull(t *testing.T) *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// The program is the box user and nothing more: no supplementary group,
// no capability in any set, no_new_privs, its own session, oom_score_adj
// 1000, while the process that started it keeps its own.
func TestProgramRunsAsTheBoxUserWithNothingElse(t *testing.T) {
	ownScore, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	script := `id -u; id -g; id -G; grep -E '^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Amb)|NoNewPrivs):' /proc/self/status; ` +
		`cat /proc/self/oom_score_adj; awk '{print ($1 == $6)}' /proc/$$/stat`
	got := runProgram(t, &program{path: "/bin/sh", execFD: -1, argv: []string{"sh", "-c", script}, env: []string{"PATH=/usr/bin:/bin"}, files: make([]int, 3)})
	want := "65534\n65534\n65534\n" +
		"Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t \n" +
		"CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" +
		"CapAmb:\t0000000000000000\nNoNewPrivs:\t1\n1000\n1\n"
	if got != want {
		t.Errorf("the program's identity:\n%s\nwant:\n%s", got, want)
	}
	if after, _ := os.ReadFile("/proc/self/oom_score_adj"); string(after) != string(ownScore) {
		t.Errorf("the starter's oom_score_adj went from %q to %q", ownScore, after)
	}
}

// The program starts with no signal blocked or ignored, whatever the
// process that starts it ignores (the runtime's own reset in a child keeps
// those ignored).
func TestProgramStartsWithNoSignalBlockedOrIgnored(t *testing.T) {
	signal.Ignore(unix.SIGUSR1)
	defer signal.Reset(unix.SIGUSR1)
	got := runProgram(t, &program{path: "/bin/grep", execFD: -1, argv: []string{"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"}, files: make([]int, 3)})
	if want := "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"; got != want {
		t.Errorf("the program's signals:\n%s\nwant:\n%s", got, want)
	}
}

// A child that fails before the program runs says at which step, and is reaped.
func TestProgramThatCannotStartSaysWhy(t *testing.T) {
	var hard unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &hard); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		p     program
		step  spawnStep
		errno unix.Errno
	}{
		{"a missing file", program{path: "/nonexistent", argv: []string{"x"}}, stepExec, unix.ENOENT},
		{"a directory", program{path: "/", argv: []string{"x"}}, stepExec, unix.EACCES},
		{"a missing directory", program{path: "/bin/true", argv: []string{"x"}, dir: "/nonexistent"}, stepChdir, unix.ENOENT},
	} {
		p := c.p
		p.execFD, p.files, p.uid, p.gid, p.runGroup = -1, []int{-1}, 65534, 65534, noRunGroup
		if p.dir == "" {
			p.dir = "/"
		}
		_, err := p.start()
		var se *spawnError
		if !errors.As(err, &se) || se.Step != c.step || se.Errno != c.errno {
			t.Errorf("%s: %v, want %s: %v", c.name, err, spawnStepNames[c.step], c.errno)
		}
	}
	var st unix.WaitStatus
	if pid, err := unix.Wait4(-1, &st, unix.WNOHANG, nil); !errors.Is(err, unix.ECHILD) {
		t.Errorf("a failed child was left unreaped (wait4: pid %d, %v)", pid, err)
	}
	p := &program{path: "/bin/true", execFD: -1, argv: []string{"true"}, files: []int{-1}, dir: "/", uid: 65534, gid: 65534, runGroup: noRunGroup,
		rlimits: []rlimitValue{{unix.RLIMIT_CORE, 0}, {unix.RLIMIT_NOFILE, hard.Max + 1}}}
	_, err := p.start()
	var se *spawnError
	switch {
	case err == nil:
		t.Log("this host lets root raise a hard limit (CAP_SYS_RESOURCE): nothing to refuse")
		unix.Wait4(-1, &st, 0, nil)
	case !errors.As(err, &se) || se.Step != stepRlimit || se.Index != 1 || se.Errno != unix.EPERM:
		t.Errorf("an rlimit over the hard limit: %v, want %s (index 1): EPERM", err, spawnStepNames[stepRlimit])
	}
}
