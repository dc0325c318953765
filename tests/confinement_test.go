package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
		args := append(baseArgs(state), "--dirs", strings.Join(append(defaultDirs, d), ","))
		// stdin is /dev/null: a sandboxd that started would exit 0 at once.
		out, err := exec.Command(sandboxdBin, args...).CombinedOutput()
		if code := exitCode(err); code != 1 || !strings.Contains(string(out), "state dir") {
			t.Errorf("--dirs with %s: exit code %d, output %q; want 1 and a message about the state dir", d, code, out)
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
