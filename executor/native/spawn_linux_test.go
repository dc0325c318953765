package native

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

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
	p.dir, p.uid, p.gid, p.cgroupFD, p.tasksFD = "/", 65534, 65534, -1, -1
	pid, err := p.start()
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	var status unix.WaitStatus
	if _, err := unix.Wait4(pid, &status, 0, nil); err != nil || status.ExitStatus() != 0 {
		t.Fatalf("wait: %v, status %v", err, status)
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

func fdLink(t *testing.T, fd int) string {
	l, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The program's fd i is files[i], wherever the init holds it: a source
// below its target (the test's own stdout as fd 4) is moved out of the
// way first, the executable's fd among the targets too, and a gap is
// closed even when the init holds an inheritable fd there.
func TestProgramGetsItsFilesAtTheirNumbers(t *testing.T) {
	sh, err := os.Open("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	execFD := int(sh.Fd())
	// An fd of the init that is inherited across exec, where the program
	// must have none.
	gap, err := unix.FcntlInt(devNull(t).Fd(), unix.F_DUPFD, max(execFD+1, 10))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(gap)
	var pipe [2]int
	if err := unix.Pipe2(pipe[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pipe[0])
	defer unix.Close(pipe[1])
	files := make([]int, gap+2)
	for i := range files {
		files[i] = -1
	}
	files[4] = 1
	files[execFD] = int(devNull(t).Fd())
	files[gap+1] = pipe[0]
	show := []int{4, execFD, gap, gap + 1}
	var script strings.Builder
	for _, fd := range show {
		fmt.Fprintf(&script, "echo %d $(readlink /proc/self/fd/%d 2>/dev/null); ", fd, fd)
	}
	got := runProgram(t, &program{execFD: execFD, argv: []string{"sh", "-c", script.String()}, env: []string{"PATH=/usr/bin:/bin"}, files: files})
	want := fmt.Sprintf("4 %s\n%d /dev/null\n%d\n%d %s\n", fdLink(t, 1), execFD, gap, gap+1, fdLink(t, pipe[0]))
	if got != want {
		t.Errorf("the program's fds:\n%s\nwant:\n%s", got, want)
	}
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
		p.execFD, p.files, p.uid, p.gid, p.cgroupFD, p.tasksFD = -1, []int{-1}, 65534, 65534, -1, -1
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
	p := &program{path: "/bin/true", execFD: -1, argv: []string{"true"}, files: []int{-1}, dir: "/", uid: 65534, gid: 65534, cgroupFD: -1, tasksFD: -1,
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
