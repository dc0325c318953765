package native

import (
	"errors"
	"fmt"
	"os"
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
		files: files, dir: "/", uid: uid, gid: uid, cgroupFD: -1, tasksFD: -1}
	pid, err := p.start()
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	var status unix.WaitStatus
	if _, err := unix.Wait4(pid, &status, 0, nil); err != nil || status.ExitStatus() != 0 {
		t.Fatalf("ls: %v, status %v", err, status)
	}
	listing, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(listing)), "\n")[1:] { // "total 0" first
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
