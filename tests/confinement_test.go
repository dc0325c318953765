package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// What a hostile program can reach beyond its own files: host mounts below a
// shown directory, other boxes through the state dir, sockets of families
// that leave the box's network namespace, IPC left by an earlier run.

var defaultDirs = []string{"/usr", "/bin", "/lib", "/lib64"}

// hostDir makes a directory that a box may show: not below /tmp, which is
// the box's own.
func hostDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "sandboxd-test-")
	if err == nil {
		err = os.Chmod(d, 0o755) // box users may look inside
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// mountTmpfs mounts a tmpfs that anyone may write at dir, on the host, until
// the end of the test.
func mountTmpfs(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0777"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// A shown directory comes with every mount below it, and each of them is
// read-only, nosuid and nodev in the box, however deep.
func TestMountsBelowAShownDirAreReadOnly(t *testing.T) {
	d := hostDir(t)
	sub, deep := filepath.Join(d, "sub"), filepath.Join(d, "sub", "deep")
	mountTmpfs(t, sub)
	mountTmpfs(t, deep)
	null := filepath.Join(sub, "null")
	if err := unix.Mknod(null, unix.S_IFCHR, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(null, 0o666); err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	box := s.ok(obj{"command": "open_box", "dirs": append(defaultDirs, d)})["box"]
	s.installProbe(int(box.(float64)))
	probe := func(args ...string) string {
		t.Helper()
		r := s.ok(with(run(append([]string{"./probe"}, args...)...), "box", box, "stdout", "out.txt"))
		if r["limit_verdict"] != "OK" {
			t.Fatalf("probe %q: %v", args, r)
		}
		return s.ok(obj{"command": "read_file", "box": box, "path": "out.txt"})["content"].(string)
	}
	for _, p := range []string{filepath.Join(d, "pwned"), filepath.Join(sub, "pwned"), filepath.Join(deep, "pwned")} {
		if got := probe("create", p); got != "open: Read-only file system\n" {
			t.Errorf("create %s in the box: %q, want EROFS", p, got)
		}
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a program created %s on the host", p)
		}
	}
	if got := probe("create", null); got != "open: Permission denied\n" {
		t.Errorf("a device node below a shown dir opened: %q, want EACCES (nodev)", got)
	}

	r := s.ok(with(run("cat", "/proc/self/mountinfo"), "box", box, "stdout", "mountinfo.txt"))
	expectVerdict(t, r, "OK", code(0))
	mountinfo := s.ok(obj{"command": "read_file", "box": box, "path": "mountinfo.txt"})["content"].(string)
	below := 0
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || (f[4] != d && !strings.HasPrefix(f[4], d+"/")) {
			continue
		}
		below++
		opts := strings.Split(f[5], ",")
		for _, want := range []string{"ro", "nosuid", "nodev"} {
			if !slices.Contains(opts, want) {
				t.Errorf("the box's mount %s lacks %s: %s", f[4], want, line)
			}
		}
	}
	if below != 3 {
		t.Errorf("the box shows %d mounts at or below %s, want 3 (it, sub, sub/deep):\n%s", below, d, mountinfo)
	}
}

// Every box's /space and /tmp are mounted in the state dir: a box that
// showed a directory around it, or in it, would read and write other boxes'
// files. Paths are compared resolved, so a symlink does not get around it.
func TestOpenBoxRefusesDirsAroundOrInsideTheStateDir(t *testing.T) {
	base := hostDir(t)
	state := filepath.Join(base, "state")
	for _, d := range []string{state, filepath.Join(base, "state2"), filepath.Join(base, "other")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("state", filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	s := startServerOn(t, state)
	for _, d := range []string{"/var", base, state, filepath.Join(state, "boxes"), filepath.Join(state, "boxes", "0", "space"),
		filepath.Join(base, "alias"), filepath.Join(base, "alias", "boxes", "0")} {
		expectError(t, s.call(obj{"command": "open_box", "dirs": append(defaultDirs, d)}), "invalid_argument")
	}
	// Beside the state dir is fine, also under a name that begins like it.
	for _, d := range []string{filepath.Join(base, "state2"), filepath.Join(base, "other")} {
		s.ok(obj{"command": "open_box", "dirs": append(defaultDirs, d)})
	}
	s.wait()

	// The state dir named through a symlink is the directory it leads to.
	s = startServerOn(t, filepath.Join(base, "alias"))
	expectError(t, s.call(obj{"command": "open_box", "dirs": append(defaultDirs, filepath.Join(state, "boxes"))}), "invalid_argument")
}

// The same holds for --dirs: sandboxd refuses to start, saying why.
func TestStartRefusesDirsAroundOrInsideTheStateDir(t *testing.T) {
	base := hostDir(t)
	state := filepath.Join(base, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(base, "alias")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{base, filepath.Join(state, "boxes"), filepath.Join(base, "alias")} {
		args := append(baseArgs(state, takeUIDs(t)), "--dirs", strings.Join(append(defaultDirs, d), ","))
		// stdin is /dev/null: a sandboxd that started would exit 0 at once.
		out, err := exec.Command(sandboxdBin, args...).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "state dir") {
			t.Errorf("--dirs with %s: exit code %d, output %q; want 1 and a message about the state dir", d, code, out)
		}
	}
}

// --dirs follows the rules of open_box's dirs.
func TestStartRefusesDirsThatOpenBoxRefuses(t *testing.T) {
	for _, d := range []string{"usr", "/usr/../etc", "/", "/dev", "/tmp/x"} {
		args := append(baseArgs(t.TempDir(), takeUIDs(t)), "--dirs", strings.Join(append(defaultDirs, d), ","))
		out, err := exec.Command(sandboxdBin, args...).CombinedOutput()
		if code := exitCode(err); code != 2 || !strings.Contains(string(out), "--dirs") {
			t.Errorf("--dirs with %s: exit code %d, output %q; want 2 and a message about --dirs", d, code, out)
		}
	}
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// A box makes only the sockets it needs: Unix, IP (its network namespace has
// only a loopback) and netlink's routing protocol (getifaddrs, glibc's
// getaddrinfo). The rest reach past the namespace (vsock: the hypervisor) or
// into the kernel's less trodden code (and its module autoloading); they
// fail as if the kernel lacked them.
func TestOnlyTheSocketFamiliesABoxNeeds(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	r := s.ok(with(run("./probe", "sockets"), "stdout", "sockets.txt"))
	expectVerdict(t, r, "OK", code(0))
	got := s.ok(obj{"command": "read_file", "path": "sockets.txt"})["content"].(string)
	want := `unix ok
unix-pair ok
inet ok
inet6 ok
netlink-route ok
netlink-audit EAFNOSUPPORT
netlink-uevent EAFNOSUPPORT
netlink-sock-diag EAFNOSUPPORT
vsock EAFNOSUPPORT
vsock-pair EAFNOSUPPORT
vsock-high-bits EAFNOSUPPORT
alg EAFNOSUPPORT
packet EAFNOSUPPORT
bluetooth EAFNOSUPPORT
tipc EAFNOSUPPORT
tipc-pair EAFNOSUPPORT
key EAFNOSUPPORT
xdp EAFNOSUPPORT
can EAFNOSUPPORT
`
	if got != want {
		t.Errorf("sockets a program made:\n%s\nwant:\n%s", got, want)
	}
}

// POSIX message queues live in the box's IPC namespace, which the box's
// runs share: one that a run leaves must not reach the next run.
func TestMessageQueuesDieWithTheRun(t *testing.T) {
	s := startServer(t)
	s.installProbe(0)
	get := func() string {
		t.Helper()
		expectVerdict(t, s.ok(with(run("./probe", "mq", "get"), "stdout", "mq.txt")), "OK", code(0))
		return s.ok(obj{"command": "read_file", "path": "mq.txt"})["content"].(string)
	}
	// Within a run, queues work.
	r := s.ok(with(run("sh", "-c", "./probe mq put && ./probe mq get"), "stdout", "mq.txt"))
	expectVerdict(t, r, "OK", code(0))
	if got := s.ok(obj{"command": "read_file", "path": "mq.txt"})["content"]; got != "secret-of-submission-A\n" {
		t.Errorf("a run could not read back its own message queue: %q", got)
	}
	if got := get(); got != "none\n" {
		t.Errorf("the next run read the previous run's message queue: %q", got)
	}
	expectVerdict(t, s.ok(run("./probe", "mq", "put")), "OK", code(0))
	s.ok(obj{"command": "reset_box"})
	s.installProbe(0)
	if got := get(); got != "none\n" {
		t.Errorf("after reset_box, a run read the message queue of a run before it: %q", got)
	}
}
