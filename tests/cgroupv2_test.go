package tests

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// cgroupBase is where sandboxd must make its groups on cgroup v2: the
// cgroup delegated to it, which scripts/test-cg2.sh names for its legs.
func cgroupBase(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skip("cgroup v1 host: placement beneath sandboxd's own cgroup is cgroup v2's (scripts/test-cg2.sh runs it)")
	}
	if base := os.Getenv("SANDBOXD_TEST_CGROUP_BASE"); base != "" {
		return base
	}
	return "/sys/fs/cgroup"
}

// cgroupOf is the cgroup directory of a process on cgroup v2.
func cgroupOf(t *testing.T, pid int) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	rel, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "0::")
	if !ok {
		t.Fatalf("no cgroup v2 line in /proc/%d/cgroup: %q", pid, data)
	}
	return filepath.Join("/sys/fs/cgroup", rel)
}

// hostRoot tells whether dir is the host's root cgroup (it has no type).
func hostRoot(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, "cgroup.type"))
	return err != nil
}

// placedIn checks that a running sandboxd made its groups in base and
// lives in base's leaf (or, at the host's root, where it was started).
func placedIn(t *testing.T, s *server, base, startedIn string) {
	t.Helper()
	if groups := cgroupsOf(s.stateDir); !slices.Equal(groups, []string{filepath.Join(base, instanceCgroup(s.stateDir))}) {
		t.Errorf("sandboxd's groups are %v, want only %s/%s", groups, base, instanceCgroup(s.stateDir))
	}
	want := filepath.Join(base, "leaf")
	if hostRoot(base) {
		want = startedIn
	}
	if got := cgroupOf(t, s.cmd.Process.Pid); got != want {
		t.Errorf("sandboxd lives in %s, want %s", got, want)
	}
	if procs, _ := os.ReadFile(filepath.Join(base, "cgroup.procs")); !hostRoot(base) && len(procs) > 0 {
		t.Errorf("%s holds processes (%q): its children cannot have controllers", base, procs)
	}
}

// On cgroup v2 sandboxd makes its groups beneath the cgroup it was given,
// never above it: started by the judge (in the judge's cgroup), and
// started alone in a cgroup of its own, which it then splits into its
// groups and a leaf for itself. Nothing is left once it exits.
func TestCgroupV2Placement(t *testing.T) {
	base := cgroupBase(t)
	t.Run("started by the judge", func(t *testing.T) {
		judge := cgroupOf(t, os.Getpid())
		s := startServer(t)
		s.installProbe(0)
		expectVerdict(t, s.ok(run("./probe", "exit", "0")), "OK", code(0))
		placedIn(t, s, base, judge)
		if c := s.wait(); c != 0 {
			t.Errorf("exit code %d (stderr: %s)", c, s.stderr.String())
		}
		if left := leftovers(s.stateDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	t.Run("started alone in a cgroup of its own", func(t *testing.T) {
		// The judge's sandboxd above enabled the controllers in base.
		own := filepath.Join(base, "alone-"+strconv.Itoa(os.Getpid()))
		if err := os.Mkdir(own, 0o755); err != nil {
			t.Fatal(err)
		}
		dir, err := os.Open(own)
		if err != nil {
			t.Fatal(err)
		}
		defer dir.Close()
		s := newServer(t, t.TempDir())
		s.cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
		s.start()
		s.installProbe(0)
		expectVerdict(t, s.ok(with(run("./probe", "mem", "512"), "memory_limit", 64<<20)), "MemoryLimitExceeded", nil)
		placedIn(t, s, own, own)
		if c := s.wait(); c != 0 {
			t.Errorf("exit code %d (stderr: %s)", c, s.stderr.String())
		}
		if left := leftovers(s.stateDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
		// What remains is the empty leaf sandboxd lived in.
		for _, d := range []string{filepath.Join(own, "leaf"), own} {
			if err := unix.Rmdir(d); err != nil {
				t.Errorf("remove %s: %v", d, err)
			}
		}
	})
}
