package tests

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"sandboxd/executor/executortest"
)

// startRefused starts a sandboxd that must refuse to start, and returns
// what it said.
func startRefused(t *testing.T, args ...string) string {
	t.Helper()
	// stdin is /dev/null: a sandboxd that started would exit 0 at once.
	out, err := exec.Command(sandboxdBin, append(baseArgs(t.TempDir(), takeUIDs(t)), args...)...).CombinedOutput()
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit code %d, want 1 (output %q)", code, out)
	}
	return string(out)
}

// Two sandboxd whose uids overlap cannot both run, whatever their state
// dirs: the second refuses to start, naming the uids and the first.
func TestOverlappingUIDRangesRefuseTheSecondInstance(t *testing.T) {
	// Its uids are the run's second thousand: the others overlap them from
	// above and below within the run's own.
	base := executortest.UIDs(1)
	first := startServer(t, "--uid-base", strconv.Itoa(base))
	first.ok(run("/bin/true"))
	for _, offset := range []int{0, 500, 999, -999} {
		out := startRefused(t, "--uid-base", strconv.Itoa(base+offset))
		for _, want := range []string{
			fmt.Sprintf("uids %d to %d are in use", base+offset, base+offset+999),
			fmt.Sprintf("another sandboxd (pid %d, state dir %s) holds uids %d to %d", first.cmd.Process.Pid, first.stateDir, base, base+999),
			"--uid-base",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("--uid-base %d: the refusal does not say %q:\n%s", base+offset, want, out)
			}
		}
	}
	// The first goes on.
	expectVerdict(t, first.ok(run("/bin/true")), "OK", code(0))
}

// Ranges apart run at once; after kill -9 of the first, a sandboxd on its
// uids starts (on its state dir, which it cleans up).
func TestDisjointUIDRangesRunAtOnceAndAKilledInstanceFreesItsUIDs(t *testing.T) {
	first := startServer(t)
	base := first.uidBase
	beside := startServer(t, "--uid-base", strconv.Itoa(base+1000))
	for _, s := range []*server{first, beside} {
		expectVerdict(t, s.ok(with(run("sh", "-c", "exit 3"))), "OK", code(3))
	}
	first.cmd.Process.Kill()
	first.cmd.Wait()
	first.exited = true
	next := startServerOn(t, first.stateDir, "--uid-base", strconv.Itoa(base))
	expectVerdict(t, next.ok(run("id", "-u")), "OK", code(0))
	if r := next.ok(obj{"command": "open_box"}); r["box"] != 1.0 {
		t.Fatalf("open_box: %v", r)
	}
	next.ok(with(run("sh", "-c", "id -u > uid"), "box", 1))
	if got := next.ok(obj{"command": "read_file", "box": 1, "path": "uid"})["content"]; got != fmt.Sprintf("%d\n", base+1) {
		t.Errorf("box 1 runs as uid %v, want --uid-base %d + 1", got, base)
	}
	expectVerdict(t, beside.ok(run("/bin/true")), "OK", code(0))
}

// A box never runs as root, a system account or an account of the host:
// --uid-base 0 made box 0 root; a range holding nobody (65534) made a box
// share nobody's processes count and signals.
func TestUIDRangeOfRootOrAHostAccountIsRefused(t *testing.T) {
	for base, want := range map[int]string{
		0:         "uids 0 to 999: box uids must lie between 1000 and",
		999:       "uids 999 to 1998: box uids must lie between 1000 and",
		65534 - 9: "include the host's user nobody (65534), group nogroup (65534)",
	} {
		out := startRefused(t, "--uid-base", strconv.Itoa(base))
		if !strings.Contains(out, want) {
			t.Errorf("--uid-base %d: the refusal does not say %q:\n%s", base, want, out)
		}
	}
}
