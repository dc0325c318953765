package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// What a judge leaves open when it starts sandboxd (a shell's `exec 7</`, a
// terminal) reaches neither the programs nor the box inits, and a stdio path
// cannot name a descriptor of the sandbox itself.

// inheritedFiles are descriptors a careless judge leaves open: the host's
// root directory at 7, as the attack battery's `exec 7</` does, a host file
// open for writing and the write end of a pipe.
func inheritedFiles(t *testing.T) map[int]*os.File {
	t.Helper()
	root, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	secret, err := os.OpenFile(filepath.Join(t.TempDir(), "judge-secret"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	files := map[int]*os.File{7: root, 8: secret, 12: pw}
	t.Cleanup(func() {
		for _, f := range append([]*os.File{pr}, root, secret, pw) {
			f.Close()
		}
	})
	return files
}

// writableDir is a host directory that anyone may write, as /tmp: what
// keeps a box's user out of it must be the sandbox.
func writableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "sandboxd-writable-") // t.TempDir's parent is root's alone
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// programFDs runs the probe's listing of its own descriptors in box 0 and
// returns it, one "N target" line each.
func programFDs(t *testing.T, s *server) []string {
	t.Helper()
	r := s.ok(with(run("./probe", "fds"), "stdout", "fds.txt"))
	expectVerdict(t, r, "OK", code(0))
	return strings.Split(strings.TrimSpace(s.ok(obj{"command": "read_file", "path": "fds.txt"})["content"].(string)), "\n")
}

// heldFiles lists which of files process pid holds open, by identity.
func heldFiles(t *testing.T, pid int, files map[int]*os.File) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var held []string
	for _, e := range entries {
		got, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for n, f := range files {
			if want, err := f.Stat(); err == nil && os.SameFile(got, want) {
				held = append(held, fmt.Sprintf("fd %s is the file the judge left at %d (%s)", e.Name(), n, f.Name()))
			}
		}
	}
	return held
}

// boxInits returns the pids of s's box inits.
func boxInits(t *testing.T, s *server) []int {
	t.Helper()
	var pids []int
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range cmdlines {
		argv, _ := os.ReadFile(p)
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if bytes.Equal(argv, []byte("sandboxd-box\x00")) && procStat(pid)[1] == strconv.Itoa(s.cmd.Process.Pid) {
			pids = append(pids, pid)
		}
	}
	if len(pids) == 0 {
		t.Fatalf("sandboxd (pid %d) has no box init", s.cmd.Process.Pid)
	}
	return pids
}

// procStat returns the fields of /proc/pid/stat after "pid (comm)": state,
// ppid, pgrp, session, tty_nr, ...; nothing if the process is gone.
func procStat(pid int) []string {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return make([]string, 5)
	}
	return strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
}

// The attack battery's reproduction: with fd 7 on the host's / inherited, a
// program read /etc/passwd and wrote /tmp through /proc/self/fd/7.
func TestInheritedDescriptorsDoNotReachPrograms(t *testing.T) {
	files := inheritedFiles(t)
	s := startServerInheriting(t, files)
	s.installProbe(0)
	pwned := filepath.Join(writableDir(t), "pwned-by-box")
	s.ok(obj{"command": "run", "argv": []string{"sh", "-c", "head -1 /proc/self/fd/7/etc/passwd; echo pwned > /proc/self/fd/7" + pwned},
		"cpu_time_limit": 1, "processes_limit": 4, "stdout": "o", "stderr": "o"})
	if out := s.ok(obj{"command": "read_file", "path": "o"})["content"].(string); strings.Contains(out, "root:") {
		t.Errorf("a program read the host's /etc/passwd through an inherited descriptor: %q", out)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("a program wrote %s on the host through an inherited descriptor", pwned)
	}
	if fds := programFDs(t, s); len(fds) != 3 || !strings.HasPrefix(fds[0], "0 ") || !strings.HasPrefix(fds[1], "1 ") || !strings.HasPrefix(fds[2], "2 ") {
		t.Errorf("a program starts with descriptors %q, want 0, 1 and 2 only", fds)
	}
	if held := heldFiles(t, s.cmd.Process.Pid, files); len(held) > 0 {
		t.Errorf("sandboxd keeps what it inherited: %v", held)
	}
	for _, pid := range boxInits(t, s) {
		if held := heldFiles(t, pid, files); len(held) > 0 {
			t.Errorf("box init %d holds what sandboxd inherited: %v", pid, held)
		}
	}
}

// openPty opens a new pseudo-terminal; the slave is nobody's controlling terminal.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}

// A judge run from a terminal, that terminal leaked at fd 5 and another one,
// nobody's controlling terminal, at fd 6: no program can make either its
// controlling terminal and type into it (TIOCSCTTY + TIOCSTI), and no box
// init shares the judge's session or terminal.
func TestLeakedTerminalCannotBeTypedInto(t *testing.T) {
	_, judgeTTY := openPty(t)
	_, spareTTY := openPty(t)
	s := newServer(t, t.TempDir())
	s.cmd.ExtraFiles = []*os.File{nil, nil, judgeTTY, spareTTY}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 5}
	s.start()
	s.installProbe(0)
	r := s.ok(with(run("./probe", "tty", "echo pwned\n"), "stdout", "tty.txt"))
	out := s.ok(obj{"command": "read_file", "path": "tty.txt"})["content"]
	if r["exit_code"] != 0.0 {
		t.Errorf("a program found a terminal: %v %q", r, out)
	}
	for _, tty := range []*os.File{judgeTTY, spareTTY} {
		fd := int(tty.Fd()) // once: Fd makes the file blocking again
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 256)
		if n, err := unix.Read(fd, buf); !errors.Is(err, unix.EAGAIN) {
			t.Errorf("terminal %s got input from a program: %q (%v)", tty.Name(), buf[:max(n, 0)], err)
		}
	}
	for _, pid := range boxInits(t, s) {
		if f := procStat(pid); f[3] != strconv.Itoa(pid) || f[4] != "0" {
			t.Errorf("box init %d: session %s, tty_nr %s; want its own session (%d) and no terminal", pid, f[3], f[4], pid)
		}
	}
}

// A stdio path resolves inside the box without magic links: /proc/<pid>/fd,
// /proc/<pid>/cwd and root, /dev/stdin and the like would name the
// descriptors and directories of the box's init, which opens the files.
func TestStdioPathsCannotNameDescriptors(t *testing.T) {
	s := startServerInheriting(t, inheritedFiles(t))
	s.ok(obj{"command": "write_file", "path": "in.txt", "content": "box file\n"})
	r := s.ok(with(run("sh", "-c", "ln -s in.txt in-link && ln -s /proc/self/fd/3 fd-link && ln -s /dev/stdin stdin-link && cp in.txt /tmp/in.txt"), "processes_limit", 8))
	expectVerdict(t, r, "OK", code(0))
	// Descriptors the init holds (0 to 2 and its sockets), and its directories.
	for _, stdin := range []string{"/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/3", "/proc/self/fd/4", "/proc/1/fd/3",
		"/proc/1/cwd/in.txt", "/proc/self/root/space/in.txt", "/dev/stdin", "/dev/fd/3", "fd-link", "stdin-link"} {
		r := s.call(with(run("cat"), "stdin", stdin, "stdout", "out.txt"))
		expectError(t, r, "exec_failed")
		if msg := r["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "magic link") {
			t.Errorf("stdin %q: the error does not say why: %q", stdin, msg)
		}
	}
	// Descriptors the init does not hold (any longer): not found, or refused.
	for _, stdin := range []string{"/proc/self/fd/5", "/proc/self/fd/6", "/proc/self/fd/7/etc/passwd", "/proc/1/fd/5", "/proc/1/fd/8"} {
		expectError(t, s.call(with(run("cat"), "stdin", stdin, "stdout", "out.txt")), "exec_failed")
	}
	// The init's own process files, which /proc opens for the init itself:
	// its memory map and status would give away its addresses and powers.
	for _, stdin := range []string{"/proc/self/maps", "/proc/self/status", "/proc/self/limits", "/proc/self/task/1/maps", "/proc/1/smaps_rollup", "/proc/version"} {
		r := s.call(with(run("cat"), "stdin", stdin, "stdout", "out.txt"))
		expectError(t, r, "exec_failed")
		if msg := r["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "/proc") {
			t.Errorf("stdin %q: the error does not say why: %q", stdin, msg)
		}
	}
	expectError(t, s.call(with(run("echo"), "stdout", "/proc/self/timerslack_ns")), "exec_failed")
	pwned := filepath.Join(writableDir(t), "pwned-by-box")
	for _, stdout := range []string{"/proc/self/fd/7" + pwned, "/proc/self/fd/1", "/dev/stdout", "/dev/stderr"} {
		expectError(t, s.call(with(run("echo", "pwned"), "stdout", stdout)), "exec_failed")
		expectError(t, s.call(with(run("echo", "pwned"), "stderr", stdout)), "exec_failed")
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("a stdout path wrote %s on the host", pwned)
	}
	// Ordinary paths, relative and absolute, and ordinary symlinks work.
	for _, c := range []struct{ stdin, stdout string }{
		{"in.txt", "out.txt"}, {"/space/in.txt", "/space/out.txt"}, {"in-link", "./out.txt"}, {"/tmp/in.txt", "/tmp/out.txt"},
	} {
		r := s.ok(with(run("cat"), "stdin", c.stdin, "stdout", c.stdout, "stderr", "/dev/null"))
		expectVerdict(t, r, "OK", code(0))
		got := s.ok(with(run("cat", c.stdout), "stdout", "check.txt"))
		expectVerdict(t, got, "OK", code(0))
		if content := s.ok(obj{"command": "read_file", "path": "check.txt"})["content"]; content != "box file\n" {
			t.Errorf("stdin %q, stdout %q: the program wrote %q", c.stdin, c.stdout, content)
		}
	}
}

// Seen from the host, a box's init holds its two sockets, /dev/null as its
// stdin and stdout, as its stderr a pipe that only sandboxd reads (where a
// crash of the init tells its cause), the Go runtime's poller and its box's
// mqueue file system, and nothing of the host: no file a program could
// reach through it.
func TestBoxInitHoldsNothingOfTheHost(t *testing.T) {
	s := startServerInheriting(t, inheritedFiles(t))
	s.installProbe(0)
	expectVerdict(t, s.ok(run("./probe", "exit", "0")), "OK", code(0))
	sandboxdFDs := map[string]bool{}
	if entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid)); err == nil {
		for _, e := range entries {
			if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", s.cmd.Process.Pid, e.Name())); err == nil {
				sandboxdFDs[target] = true
			}
		}
	}
	for _, pid := range boxInits(t, s) {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			target, err := os.Readlink(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			if e.Name() == "2" && strings.HasPrefix(target, "pipe:") && sandboxdFDs[target] {
				continue // the init's stderr, whose other end sandboxd holds
			}
			if target == fmt.Sprintf("/proc/%d/maps", pid) {
				continue // its own memory map, read for a moment while it starts (seen in the v2 guest)
			}
			if target == "/proc/sys/kernel/ns_last_pid" && isBoxProc(filepath.Join(dir, e.Name()), pid) {
				continue // the box's own next pid, which the init sets before each run
			}
			if target != "/dev/null" && !strings.HasPrefix(target, "socket:") && !strings.HasPrefix(target, "anon_inode:") && !isMessageQueueFS(filepath.Join(dir, e.Name())) {
				t.Errorf("box init %d holds fd %s on %s", pid, e.Name(), target)
			}
		}
	}
}

// isBoxProc tells whether fd is a file of the /proc that box init pid
// mounted in its box (the file system its root shows at /proc), not the host's.
func isBoxProc(fd string, pid int) bool {
	var file, boxProc, hostProc unix.Stat_t
	return unix.Stat(fd, &file) == nil && unix.Stat(fmt.Sprintf("/proc/%d/root/proc", pid), &boxProc) == nil &&
		unix.Stat("/proc", &hostProc) == nil && file.Dev == boxProc.Dev && file.Dev != hostProc.Dev
}

// isMessageQueueFS tells whether fd names the box's own POSIX message queue
// file system (which the init holds, unmounted, to clear queues after runs).
func isMessageQueueFS(fd string) bool {
	var st unix.Statfs_t
	return unix.Statfs(fd, &st) == nil && st.Type == mqueueMagic
}

// mqueueMagic is the mqueue file system's magic number (linux/magic.h).
const mqueueMagic = 0x19800202

// isolate is started with nothing sandboxd inherited: a stand-in for it
// lists its descriptors on every call.
func TestIsolateGetsNoStrayDescriptors(t *testing.T) {
	dir := t.TempDir()
	probe, fdLog, fake := filepath.Join(dir, "probe"), filepath.Join(dir, "fds"), filepath.Join(dir, "isolate")
	if err := os.WriteFile(probe, probeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	stand, err := filepath.Abs("../testdata/fake-isolate/isolate")
	if err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n%q fds >>%q\necho -- >>%q\nFAKE_ISOLATE_LOG=%q FAKE_ISOLATE_ROOT=%q exec %q \"$@\"\n",
		probe, fdLog, fdLog, filepath.Join(dir, "calls"), filepath.Join(dir, "root"), stand)
	if err := os.WriteFile(fake, []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	s := startServerInheriting(t, inheritedFiles(t), "--executor=isolate", "--isolate-path", fake, "--isolate-first-box", "900")
	s.ok(obj{"command": "write_file", "path": "ok", "content": "#!/bin/sh\n", "mode": 0o755})
	expectVerdict(t, s.ok(run("./ok")), "OK", code(0))
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code %d (stderr: %s)", code, s.stderr.String())
	}
	log, err := os.ReadFile(fdLog)
	if err != nil {
		t.Fatal(err)
	}
	calls := strings.Split(strings.TrimSuffix(string(log), "--\n"), "--\n")
	if len(calls) < 4 { // --version, --init, --run, --cleanup at least
		t.Fatalf("isolate was called %d times: %q", len(calls), log)
	}
	for _, call := range calls {
		for _, line := range strings.Split(strings.TrimSpace(call), "\n") {
			if fd, _, _ := strings.Cut(line, " "); fd != "0" && fd != "1" && fd != "2" {
				t.Errorf("isolate was started with descriptor %s", line)
			}
		}
	}
}

// A judge that blocks or ignores signals (a threaded server that takes them
// with sigwait, nohup, a shell's `trap "" HUP`) passes that state to
// sandboxd, and a process keeps it across exec. No program may inherit it: a
// program with SIGXFSZ blocked would write past its file_size_limit and end
// OK, one with SIGPIPE ignored would live on after its interactor closed the
// pipe. A judge with none blocked or ignored gives programs the same.
func TestJudgeSignalStateDoesNotReachPrograms(t *testing.T) {
	programSignals := func(s *server) string {
		s.ok(with(run("grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"), "stdout", "sig.txt"))
		return s.ok(obj{"command": "read_file", "path": "sig.txt"})["content"].(string)
	}
	const none = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
	backends(t, func(t *testing.T, backend []string) {
		clean := startServer(t, backend...)
		if got := programSignals(clean); got != none {
			t.Errorf("a program of a judge that blocks and ignores no signal starts with\n%s\nwant\n%s", got, none)
		}
		clean.wait() // isolate's boxes are one set
		s := newServer(t, t.TempDir(), backend...)
		s.cmd.Args = append([]string{probePath, "careless", sandboxdBin}, s.cmd.Args[1:]...)
		s.cmd.Path = probePath
		s.start()
		if got := programSignals(s); got != none {
			t.Errorf("a program of a judge that blocks and ignores signals starts with\n%s\nwant\n%s", got, none)
		}
		// The mark of sandboxd's own second start is gone from the
		// environment that programs inherit.
		s.ok(with(run("sh", "-c", "echo ${SANDBOXD_SIGNALS_RESET-unset}"), "stdout", "env.txt"))
		if got := s.ok(obj{"command": "read_file", "path": "env.txt"})["content"]; got != "unset\n" {
			t.Errorf("SANDBOXD_SIGNALS_RESET in a program's environment: %q", got)
		}
		r := s.ok(with(run("yes"), "stdout", "out.txt", "file_size_limit", 1<<20))
		if r["limit_verdict"] != "Signaled" || r["exit_code"] != -25.0 {
			t.Errorf("yes past file_size_limit under a judge that blocks SIGXFSZ: %v, want Signaled -25", r)
		}
		// sandboxd itself keeps what the judge asked of it: started as
		// with nohup, it outlives a hangup and a terminal's stop; and it
		// keeps its name (ps, pkill -x) through its second start.
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", s.cmd.Process.Pid))
		if want := filepath.Base(sandboxdBin); err != nil || strings.TrimSpace(string(comm)) != want[:min(len(want), 15)] {
			t.Errorf("sandboxd's name is %q (%v), want %q", comm, err, want)
		}
		for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU} {
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			expectVerdict(t, s.call(run("true")), "OK", code(0))
		}
	})
}
