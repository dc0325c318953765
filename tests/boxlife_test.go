package tests

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The life of a box: close_box and reset_box end the runs in flight, an id
// is given again only once its box is gone, and a tree of directories
// deeper than any path is removed, quickly.

// backends runs a test on the native backend, and on isolate where an
// isolate binary is present (SANDBOXD_ISOLATE, or isolate on PATH): the
// test starts its servers with the backend's flags.
func backends(t *testing.T, test func(t *testing.T, backend []string)) {
	t.Run("native", func(t *testing.T) {
		test(t, nil)
	})
	t.Run("isolate", func(t *testing.T) {
		isolate := os.Getenv("SANDBOXD_ISOLATE")
		if isolate == "" {
			var err error
			if isolate, err = exec.LookPath("isolate"); err != nil {
				t.Skip("no isolate binary: put isolate on PATH or set SANDBOXD_ISOLATE=/path/to/isolate")
			}
		}
		// isolate's boxes run as its first_uid (60000) + its box id: ids
		// from 640 keep clear of the other tests' boxes.
		test(t, []string{"--executor=isolate", "--isolate-path", isolate, "--isolate-first-box", "640", "--uid-base", "60000"})
	})
}

// tmpfsDir is an empty tmpfs for the test. (isolate boxes keep /space and
// /tmp in the state dir; on this machine kind's ext4, removing a tree
// takes about 0.3 ms a directory.)
func tmpfsDir(t *testing.T) string {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1g,mode=0755"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// replyStream reads a server's replies in the background, so that a test
// can wait for one with a deadline. Once a stream is started, the test
// reads replies only through it.
type replyStream struct {
	s       *server
	replies chan obj
}

func (s *server) stream() *replyStream {
	rs := &replyStream{s: s, replies: make(chan obj, 1000)}
	go func() {
		defer close(rs.replies)
		for {
			line, err := s.out.ReadBytes('\n')
			if err != nil {
				return
			}
			var m obj
			if json.Unmarshal(line, &m) != nil {
				m = obj{"not_json": string(line)}
			}
			rs.replies <- m
		}
	}()
	return rs
}

// next returns the next reply. When none comes within d, sandboxd is killed
// (it would hold the test up) and the test fails.
func (rs *replyStream) next(d time.Duration) obj {
	t := rs.s.t
	t.Helper()
	select {
	case r, ok := <-rs.replies:
		if !ok {
			t.Fatalf("sandboxd closed its stdout (stderr: %s)", rs.s.stderr.String())
		}
		return r
	case <-time.After(d):
		rs.s.cmd.Process.Kill()
		t.Fatalf("no reply within %v (stderr: %s)", d, rs.s.stderr.String())
	}
	return nil
}

// collect reads n replies, each within d, and returns them by id and the
// ids in the order the replies came.
func (rs *replyStream) collect(n int, d time.Duration) (map[any]obj, []any) {
	rs.s.t.Helper()
	byID := map[any]obj{}
	var order []any
	for range n {
		r := rs.next(d)
		byID[r["id"]] = r
		order = append(order, r["id"])
	}
	return byID, order
}

// call sends a request and returns its reply, which must come within 10 s.
func (rs *replyStream) call(req obj) obj {
	rs.s.t.Helper()
	rs.s.send(mustJSON(req))
	return rs.next(10 * time.Second)
}

func expectSuccess(t *testing.T, r obj) {
	t.Helper()
	if e, bad := r["error"]; bad {
		t.Fatalf("request %v failed: %v", r["id"], e)
	}
}

// boxDir is a box's directory in the state dir, under both backends.
func (s *server) boxDir(box int) string {
	return filepath.Join(s.stateDir, "boxes", strconv.Itoa(box))
}

// sleeper is a run that would sleep for a day: it has no real time limit,
// and its environment names its box's directory, which tells its processes.
func sleeper(s *server, id string, box int) obj {
	return obj{"command": "run", "id": id, "box": box, "argv": []string{"sleep", "100000"},
		"cpu_time_limit": 1, "processes_limit": 1,
		"env": obj{"PATH": "/usr/bin:/bin", "SANDBOXD_TEST_RUN": s.boxDir(box) + "/sleeper"}}
}

// boxProcesses lists the processes whose environment names the box's
// directory, the sleepers run in it, and their parent the box's init
// (native; the init of a box made ahead of time does not name it).
func boxProcesses(s *server, box int) []string {
	var found []string
	environs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range environs {
		environ, _ := os.ReadFile(p)
		if !strings.Contains(string(environ), s.boxDir(box)+"/") {
			continue
		}
		found = append(found, "process "+filepath.Dir(p))
		status, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "status"))
		if m := regexp.MustCompile(`(?m)^PPid:\s*([0-9]+)$`).FindSubmatch(status); m != nil {
			parent := "/proc/" + string(m[1])
			cmdline, _ := os.ReadFile(parent + "/cmdline")
			if string(cmdline) == "sandboxd-box\x00" && !slices.Contains(found, "process "+parent) {
				found = append(found, "process "+parent)
			}
		}
	}
	return found
}

// stillThere lists the processes of procs (from boxProcesses) that exist.
func stillThere(procs []string) []string {
	var found []string
	for _, p := range procs {
		if _, err := os.Stat(strings.TrimPrefix(p, "process ")); err == nil {
			found = append(found, p)
		}
	}
	return found
}

// boxRemains lists what a box has on the host: its directory, mounts,
// cgroups and processes.
func boxRemains(s *server, box int) []string {
	dir := s.boxDir(box)
	var found []string
	if _, err := os.Lstat(dir); err == nil {
		found = append(found, "directory "+dir)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, dir+"/") || strings.Contains(line, dir+" ") {
			found = append(found, "mount "+line)
		}
	}
	name := "box" + strconv.Itoa(box)
	for _, c := range cgroupsOf(s.stateDir) {
		if _, err := os.Lstat(filepath.Join(c, name)); err == nil {
			found = append(found, "cgroup "+filepath.Join(c, name))
		}
	}
	return append(found, boxProcesses(s, box)...)
}

// sleeping tells whether a box's sleeper runs.
func sleeping(s *server, box int) bool {
	return slices.ContainsFunc(boxProcesses(s, box), func(p string) bool {
		// argv[0] is "sleep" natively, the path found under isolate.
		cmdline, _ := os.ReadFile(strings.TrimPrefix(p, "process ") + "/cmdline")
		return strings.HasSuffix(string(cmdline), "sleep\x00100000\x00")
	})
}

// waitForSleeper waits until the sleeper of a box runs.
func waitForSleeper(t *testing.T, s *server, box int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !sleeping(s, box) {
		if time.Now().After(deadline) {
			t.Fatalf("the sleeper of box %d did not start (stderr: %s)", box, s.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// close_box of a box whose program sleeps without a real time limit kills
// the program: the run is answered box_closed at once, then the close, and
// nothing of the box remains.
func TestCloseBoxEndsARunInFlight(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		box := int(num(t, s.ok(obj{"command": "open_box"}), "box"))
		rs := s.stream()
		s.send(mustJSON(sleeper(s, "sleeper", box)))
		waitForSleeper(t, s, box)
		procs := boxProcesses(s, box)
		if backend == nil && len(procs) != 2 {
			t.Errorf("the sleeper and the box's init: found %v", procs)
		}
		closed := time.Now()
		s.send(mustJSON(obj{"command": "close_box", "id": "close", "box": box}))
		r := rs.next(5 * time.Second)
		if r["id"] != "sleeper" {
			t.Fatalf("first reply after close_box: %v, want the sleeper's", r)
		}
		expectError(t, r, "box_closed")
		if took := time.Since(closed); took > time.Second {
			t.Errorf("the run was answered %v after close_box", took)
		}
		r = rs.next(5 * time.Second)
		if r["id"] != "close" {
			t.Fatalf("second reply: %v, want close_box's", r)
		}
		expectSuccess(t, r)
		if left := append(boxRemains(s, box), stillThere(procs)...); len(left) > 0 {
			t.Errorf("box %d is closed, but it left: %v", box, left)
		}
		expectError(t, rs.call(obj{"command": "box_path", "box": box}), "no_such_box")
		if code := s.wait(); code != 0 {
			t.Errorf("exit code %d (stderr: %s)", code, s.stderr.String())
		}
		if left := leftovers(s.stateDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
}

// reset_box ends the box's runs sent before it: the one in flight is
// killed, a queued one never starts; other requests queued before the
// reset keep their order, and the reset then empties the box.
func TestResetBoxEndsRunsInFlight(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		s.ok(obj{"command": "write_file", "path": "before.txt", "content": "x"})
		rs := s.stream()
		s.send(mustJSON(sleeper(s, "sleeper", 0)))
		s.send(mustJSON(obj{"command": "write_file", "id": "during", "path": "during.txt", "content": "y"}))
		s.send(mustJSON(with(run("sh", "-c", "echo ran > ran.txt"), "id", "queued")))
		waitForSleeper(t, s, 0)
		reset := time.Now()
		s.send(mustJSON(obj{"command": "reset_box", "id": "reset"}))
		byID, order := rs.collect(4, 5*time.Second)
		if took := time.Since(reset); took > 2*time.Second {
			t.Errorf("the reset and the runs it ended were answered %v after reset_box", took)
		}
		expectError(t, byID["sleeper"], "box_reset")
		expectError(t, byID["queued"], "box_reset")
		expectSuccess(t, byID["during"])
		expectSuccess(t, byID["reset"])
		pos := func(id string) int { return slices.Index(order, any(id)) }
		if !(pos("sleeper") < pos("during") && pos("during") < pos("reset")) {
			t.Errorf("replies in order %v: want the sleeper, then the write queued after it, then the reset", order)
		}
		if sleeping(s, 0) {
			t.Errorf("the sleeper outlived reset_box: %v", boxProcesses(s, 0))
		}
		if entries := rs.call(obj{"command": "list_files"})["entries"]; len(entries.([]any)) != 0 {
			t.Errorf("/space after reset_box: %v", entries)
		}
		expectVerdict(t, rs.call(run("sh", "-c", `test -z "$(ls -A /tmp)" && test -z "$(ls -A /space)"`)), "OK", code(0))
	})
}

// Runs that hold every --parallel slot, however long, hold up only other
// runs: requests that run no program are answered at once.
func TestRunsInFlightDoNotHoldUpOtherRequests(t *testing.T) {
	s := startServer(t, "--parallel", "2")
	for range 3 {
		s.ok(obj{"command": "open_box"})
	}
	rs := s.stream()
	s.send(mustJSON(sleeper(s, "sleeper1", 1)))
	s.send(mustJSON(sleeper(s, "sleeper2", 2)))
	waitForSleeper(t, s, 1)
	waitForSleeper(t, s, 2)
	s.send(mustJSON(with(run("/bin/true"), "id", "waiting", "box", 3)))
	requests := []obj{
		{"command": "version"},
		{"command": "open_box"},
		{"command": "write_file", "path": "a.txt", "content": "a"},
		{"command": "read_file", "path": "a.txt"},
		{"command": "list_files"},
		{"command": "box_path"},
		{"command": "remove_file", "path": "a.txt"},
		{"command": "reset_box"},
	}
	started := time.Now()
	for i, req := range requests {
		s.send(mustJSON(with(req, "id", i)))
	}
	byID, _ := rs.collect(len(requests), 3*time.Second)
	if took := time.Since(started); took > time.Second {
		t.Errorf("%d requests that run no program took %v beside two runs in flight", len(requests), took)
	}
	for i, req := range requests {
		r, ok := byID[float64(i)]
		if !ok {
			t.Fatalf("no reply to %v among %v", req, byID)
		}
		expectSuccess(t, r)
	}
	// The run on box 3 waits for a slot; closing box 1 frees one.
	s.send(mustJSON(obj{"command": "close_box", "id": "close1", "box": 1}))
	byID, _ = rs.collect(3, 5*time.Second)
	expectError(t, byID["sleeper1"], "box_closed")
	expectSuccess(t, byID["close1"])
	expectVerdict(t, byID["waiting"], "OK", code(0))
	s.send(mustJSON(obj{"command": "close_box", "id": "close2", "box": 2}))
	byID, _ = rs.collect(2, 5*time.Second)
	expectError(t, byID["sleeper2"], "box_closed")
	expectSuccess(t, byID["close2"])
}

// close_box and open_box sent together: the open never gets a box that is
// still being closed, and every box it gets works.
func TestCloseAndOpenPipelined(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		box := int(num(t, s.ok(obj{"command": "open_box"}), "box"))
		for i := range 40 {
			s.send(mustJSON(obj{"command": "close_box", "id": "close", "box": box}))
			s.send(mustJSON(obj{"command": "open_box", "id": "open"}))
			replies := map[any]obj{}
			for range 2 {
				r := s.recv()
				replies[r["id"]] = r
			}
			for _, id := range []string{"close", "open"} {
				if e, bad := replies[id]["error"]; bad || replies[id] == nil {
					t.Fatalf("pair %d: %s of box %d: %v (%v)", i, id, box, replies[id], e)
				}
			}
			box = int(num(t, replies["open"], "box"))
			expectVerdict(t, s.ok(with(run("/bin/true"), "box", box)), "OK", code(0))
		}
		entries, _ := os.ReadDir(filepath.Join(s.stateDir, "boxes"))
		var names []string
		spares := 0
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "spare-") {
				spares++ // the box sandboxd prepares for the next open_box
			} else {
				names = append(names, e.Name())
			}
		}
		if want := []string{"0", strconv.Itoa(box)}; !slices.Equal(names, want) || spares > 1 {
			t.Errorf("box directories %v and %d spares, want %v and at most one spare", names, spares, want)
		}
		if code := s.wait(); code != 0 {
			t.Errorf("exit code %d (stderr: %s)", code, s.stderr.String())
		}
		if left := leftovers(s.stateDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
}

// A program can make a chain of directories deeper than any path:
// reset_box and remove_file remove it, in two boxes at once, quickly, and
// never follow a symlink out of it.
func TestDeepTreesAreRemoved(t *testing.T) {
	const depth = "16000"
	backends(t, func(t *testing.T, backend []string) {
		s := startServerOn(t, tmpfsDir(t), backend...)
		boxes := []int{int(num(t, s.ok(obj{"command": "open_box"}), "box")), int(num(t, s.ok(obj{"command": "open_box"}), "box"))}
		deepTree := func(box int, dir string) {
			t.Helper()
			expectVerdict(t, s.ok(with(run("./probe", "deeptree", dir, depth), "box", box)), "OK", code(0))
		}
		for _, box := range boxes {
			s.installProbe(box)
			deepTree(box, "/space")
			deepTree(box, "/tmp")
		}
		rs := s.stream()
		started := time.Now()
		for _, box := range boxes {
			s.send(mustJSON(obj{"command": "reset_box", "id": box, "box": box}))
		}
		byID, _ := rs.collect(len(boxes), 60*time.Second)
		t.Logf("reset_box of two boxes with %s-deep trees in /space and /tmp: %v", depth, time.Since(started))
		for _, box := range boxes {
			expectSuccess(t, byID[float64(box)])
		}
		// Native boxes get new tmpfs; isolate's remove their trees.
		bound := 2 * time.Second
		if backend != nil {
			bound = 5 * time.Second
		}
		if took := time.Since(started); took > bound && !functionalOnly {
			t.Errorf("reset_box of two boxes with deep trees took %v", took)
		}
		for _, box := range boxes {
			if entries := rs.call(obj{"command": "list_files", "box": box})["entries"]; len(entries.([]any)) != 0 {
				t.Errorf("box %d's /space after reset_box: %v", box, entries)
			}
			expectVerdict(t, rs.call(with(run("sh", "-c", `test -z "$(ls -A /tmp)"`), "box", box)), "OK", code(0))
		}

		for _, box := range boxes {
			rs.call(obj{"command": "write_file", "box": box, "path": "probe", "content_base64": base64.StdEncoding.EncodeToString(probeBin), "mode": 0o755})
			expectVerdict(t, rs.call(with(run("./probe", "deeptree", "/space", depth), "box", box)), "OK", code(0))
			// Symlinks in the tree lead out of it and up it.
			expectVerdict(t, rs.call(with(run("sh", "-c", "mkdir keep && echo kept > keep/f && ln -s ../keep d/keep && ln -s .. d/d/up && ln -s /space d/d/d/space"), "box", box)), "OK", code(0))
		}
		started = time.Now()
		for _, box := range boxes {
			s.send(mustJSON(obj{"command": "remove_file", "id": box, "box": box, "path": "d"}))
		}
		byID, _ = rs.collect(len(boxes), 60*time.Second)
		t.Logf("remove_file of %s-deep trees in two boxes: %v", depth, time.Since(started))
		for _, box := range boxes {
			expectSuccess(t, byID[float64(box)])
		}
		if took := time.Since(started); took > 5*time.Second && !functionalOnly {
			t.Errorf("remove_file of deep trees in two boxes took %v", took)
		}
		for _, box := range boxes {
			if got := rs.call(obj{"command": "read_file", "box": box, "path": "keep/f"})["content"]; got != "kept\n" {
				t.Errorf("box %d: keep/f, which a symlink in the removed tree pointed to: %v", box, got)
			}
			var names []any
			for _, e := range rs.call(obj{"command": "list_files", "box": box})["entries"].([]any) {
				names = append(names, e.(map[string]any)["name"])
			}
			if !slices.Equal(names, []any{"keep", "probe"}) {
				t.Errorf("box %d's /space after remove_file d: %v", box, names)
			}
		}
	})
}

// newBoxProbe is what a program can look at to tell a reset box from a new
// one: its own pid and how many processes it sees, the inode numbers and
// contents of /space, /tmp and /dev/shm, their mount options and owner, the
// init's name, the hostname, the next System V IPC ids, IPC objects left,
// the first pty's number, the box's ptys.
const newBoxProbe = `echo pid $$; n=0; for p in /proc/[0-9]*; do n=$((n + 1)); done; echo $n
stat -c '%n %i %a' /space /tmp /dev /dev/* /space/probe
grep -E ' /(space|tmp) ' /proc/self/mountinfo | sed 's/^[^ ]* [^ ]* [^ ]* [^ ]* \([^ ]*\) .* - /\1 /'
[ "$(stat -c %u:%g /space /tmp | sort -u)" = "$(id -u):$(id -g)" ] && echo owned by the box user
tr '\0' ' ' < /proc/1/cmdline; echo
uname -n; ls -A /space /tmp /dev/pts; ./probe ipcids; ./probe shm get; ./probe mq get
python3 -c 'import os, pty; print(os.ttyname(pty.openpty()[1]))'
cat /proc/sysvipc/shm /proc/sysvipc/msg /proc/sysvipc/sem | grep -v key | wc -l`

// messUpBox leaves in a box what runs can leave or change: files in /space,
// /tmp and /dev/shm, System V objects, pids and IPC ids used up; and it
// tries to change the hostname, which the box user cannot.
const messUpBox = `echo left > /space/f; echo left > /tmp/f; echo left > /dev/shm/sem.x; mkdir /space/d /tmp/d
./probe shm put; ./probe ipcids; ./probe ipcids; ./probe mq put
for i in 1 2 3 4 5 6 7 8 9 10; do true & done; wait
if hostname other 2>/dev/null || python3 -c 'import socket; socket.sethostname("other")' 2>/dev/null; then exit 1; fi`

// firstPids matches the probe's pid line where a run's first pids are.
var firstPids = regexp.MustCompile(`(?m)^pid 10[0-3]$`)

// anyPid matches the probe's pid line.
var anyPid = regexp.MustCompile(`(?m)^pid [0-9]+$`)

// reset_box gives a box that no program can tell from a new one.
func TestResetBoxIsANewBox(t *testing.T) {
	s := startServer(t)
	// A dozen programs and two Pythons: roomy limits for emulated machines.
	shell := func(script string) obj {
		return with(run("sh", "-c", script), "cpu_time_limit", 60.0, "real_time_limit", 120.0)
	}
	observe := func(box int) string {
		t.Helper()
		s.installProbe(box)
		expectVerdict(t, s.ok(with(shell(newBoxProbe), "box", box, "stdout", "seen.txt", "stderr", "seen.err")), "OK", code(0))
		seen := s.readFile(box, "seen.txt") + s.readFile(box, "seen.err")
		s.ok(obj{"command": "remove_file", "box": box, "path": "seen.txt"})
		s.ok(obj{"command": "remove_file", "box": box, "path": "seen.err"})
		// The init's Go runtime may start a thread in the moment between
		// setting the box's next pid and the fork, in a new box as in a reset
		// one: the first program is pid 100 or a few above.
		if functionalOnly {
			// Under the v2 guest's emulation the program was once seen at pid
			// 9 after a reset, as if the next pid had not been set: an open
			// question (see the stop note), so pids are compared on the host.
			return anyPid.ReplaceAllString(seen, "pid ?")
		}
		return firstPids.ReplaceAllString(seen, "pid 100+")
	}
	box := int(num(t, s.ok(obj{"command": "open_box"}), "box"))
	fresh := observe(box)
	t.Logf("a new box shows:\n%s", fresh)
	for i := 0; i < 3; i++ {
		expectVerdict(t, s.ok(with(shell(messUpBox), "box", box)), "OK", code(0))
		if again := observe(box); again == fresh {
			t.Fatalf("a reused box looks new: the probe cannot tell:\n%s", again)
		}
		s.ok(obj{"command": "reset_box", "box": box})
		if reset := observe(box); reset != fresh {
			t.Errorf("after reset_box %d, a program sees:\n%s\nwhere a new box shows:\n%s", i, reset, fresh)
		}
	}
	// Another new box looks the same, and so does box 0, made at start.
	other := int(num(t, s.ok(obj{"command": "open_box"}), "box"))
	if seen := observe(other); seen != fresh {
		t.Errorf("another new box shows:\n%s\nwhere the first showed:\n%s", seen, fresh)
	}
	if seen := observe(0); seen != fresh {
		t.Errorf("box 0 shows:\n%s\nwhere the first new box showed:\n%s", seen, fresh)
	}
}

// A box's quotas hold in each /space and /tmp it gets: a new box's (made
// ahead of time, with the default quotas, and then given the box's) and a
// reset box's.
func TestQuotasHoldInANewAndAResetBox(t *testing.T) {
	s := startServer(t)
	box := int(num(t, s.ok(obj{"command": "open_box", "quota_space": 1 << 20, "quota_inodes": 64}), "box"))
	const script = `grep -E ' /(space|tmp) ' /proc/self/mountinfo | grep -oE 'size=[^,]*,nr_inodes=[0-9]*'
head -c 2000000 /dev/zero > /tmp/big 2>/dev/null || echo /tmp is full
for i in $(seq 100); do true > /space/f$i 2>/dev/null || break; done; ls /space | wc -l`
	// 64 inodes: the root, stdout's file and 62 more.
	const want = "size=1024k,nr_inodes=64\nsize=1024k,nr_inodes=64\n/tmp is full\n63\n"
	for _, when := range []string{"new", "reset"} {
		expectVerdict(t, s.ok(with(run("sh", "-c", script), "box", box, "stdout", "seen")), "OK", code(0))
		if got := s.readFile(box, "seen"); got != want {
			t.Errorf("a %s box with quota_space 1 MiB and quota_inodes 64 shows:\n%s\nwant:\n%s", when, got, want)
		}
		s.ok(obj{"command": "reset_box", "box": box})
	}
}

// A reset_box of box 0 as the first request, while sandboxd still starts
// box 0's init in the background, is answered, and box 0 works after it.
func TestResetBoxFirstThing(t *testing.T) {
	s := startServer(t)
	rs := s.stream()
	s.send(mustJSON(obj{"command": "reset_box", "id": "reset"}))
	expectSuccess(t, rs.next(30*time.Second))
	expectVerdict(t, rs.call(run("/bin/true")), "OK", code(0))
}
