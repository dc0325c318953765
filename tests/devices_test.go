package tests

import (
	"fmt"
	"strings"
	"testing"
)

// A box's /dev: the few devices programs need, pseudo-terminals of the box's
// own, and a /dev/tty that says what it says on a host to a process without
// a controlling terminal.

func TestDevHoldsWhatProgramsNeed(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	expectVerdict(t, s.ok(with(run("sh", "-c", "ls /dev; ls -A /dev/pts; readlink /dev/ptmx; ./probe open /dev/tty; ./probe open /dev/ptmx; ./probe create /dev/new"), "stdout", "dev.txt")), "OK", code(1))
	want := strings.Join([]string{
		"fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero",
		"ptmx", "pts/ptmx", "ENXIO", "ok", "open: Read-only file system",
	}, "\n") + "\n"
	if got := s.readFile(0, "dev.txt"); got != want {
		t.Errorf("/dev, /dev/pts, the ptmx link, opening /dev/tty, /dev/ptmx, and creating a file in /dev:\n%s\nwant:\n%s", got, want)
	}
}

// ptyScript opens a pseudo-terminal with Python's pty module, sends a line
// each way through it in raw mode, and prints the slave's name, owner, mode
// and what came through.
const ptyScript = `import os, pty, stat, tty
m, s = pty.openpty()
tty.setraw(s)
os.write(m, b"ping")
got = os.read(s, 100)
os.write(s, b"pong")
st = os.fstat(s)
print(os.ttyname(s), st.st_uid, st.st_gid, oct(stat.S_IMODE(st.st_mode)), got, os.read(m, 100))
`

func TestPseudoTerminals(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	expectVerdict(t, s.ok(with(run("./probe", "id"), "stdout", "id.txt")), "OK", code(0))
	ids := strings.Fields(s.readFile(0, "id.txt"))
	r := s.ok(with(run("python3", "-c", ptyScript), "stdout", "pty.txt", "stderr", "pty.err"))
	expectVerdict(t, r, "OK", code(0))
	want := fmt.Sprintf("/dev/pts/0 %s %s 0o620 b'ping' b'pong'\n", ids[0], ids[1])
	if got := s.readFile(0, "pty.txt"); got != want {
		t.Errorf("pty.openpty: got %q, want %q (stderr %q)", got, want, s.readFile(0, "pty.err"))
	}
}

// A pty lives as long as a process of its run holds it: the next run finds
// none, and gets the first number again.
func TestPseudoTerminalsDieWithTheRun(t *testing.T) {
	s := startServer(t)
	leave := `import os, pty
m, s = pty.openpty()
if os.fork() == 0:
    os.setsid()
    os.read(m, 1)
print(os.ttyname(s))
`
	for i := 0; i < 2; i++ {
		r := s.ok(with(run("python3", "-c", leave), "stdout", "pty.txt"))
		expectVerdict(t, r, "OK", code(0))
		if got := s.readFile(0, "pty.txt"); got != "/dev/pts/0\n" {
			t.Errorf("run %d: the pty is %q, want /dev/pts/0: a run's ptys go with it", i, got)
		}
		expectVerdict(t, s.ok(with(run("ls", "-A", "/dev/pts"), "stdout", "pts.txt")), "OK", code(0))
		if got := s.readFile(0, "pts.txt"); got != "ptmx\n" {
			t.Errorf("after run %d, /dev/pts holds %q, want only ptmx", i, got)
		}
	}
}
