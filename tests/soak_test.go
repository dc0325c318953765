package tests

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The soak: a few thousand pipelined requests of every kind across several
// boxes — runs that end in every verdict and runs that cannot start, file
// commands, boxes opened, reset and closed — each answered exactly once and
// as the protocol says; afterwards sandboxd and box 0's init hold no more
// memory or descriptors than after a warm-up, no run left a process, cgroup
// or mount, and after the end of input nothing is left at all.

const (
	soakBoxes    = 4       // box 0 and three opened
	soakWarmUp   = 4       // rounds before the footprint is taken: a Go heap settles in about as many
	soakRounds   = 8       // rounds after it
	soakRequests = 400     // pipelined requests a round
	soakRSSSlack = 6 << 10 // kB: RSS moves by ±2.5 MB from round to round with the heap's collections
)

// expectation checks one reply; it returns what is wrong, or "".
type expectation func(r obj) string

// soakRequest is a request line and what its reply must be.
type soakRequest struct {
	line   string
	expect expectation
}

func TestSoak(t *testing.T) {
	s := startServer(t)
	start := time.Now()
	// The reader hands reply lines over, so that a round can time out
	// instead of hanging on a sandboxd that stopped answering.
	replies := make(chan []byte, 1024)
	go func() {
		defer close(replies)
		for {
			line, err := s.out.ReadBytes('\n')
			if err != nil {
				return
			}
			replies <- line
		}
	}()
	soak := &soaker{t: t, s: s, replies: replies, rng: rand.New(rand.NewPCG(1, 2)), files: map[int]map[string]string{},
		probe: base64.StdEncoding.EncodeToString(probeBin), requests: soakRequests}
	rounds := soakRounds
	if functionalOnly { // an emulated machine: the same checks, fewer requests
		rounds, soak.requests = 2, 100
	}
	for box := 1; box < soakBoxes; box++ {
		if got := soak.call(obj{"command": "open_box"})["box"]; got != float64(box) {
			t.Fatalf("open_box gave box %v, want %d", got, box)
		}
	}
	for box := 0; box < soakBoxes; box++ {
		soak.installProbe(box)
	}

	for i := 0; i < soakWarmUp; i++ {
		soak.round(i)
		soak.manageBoxes(i)
	}
	before := soak.footprint()
	// RSS after each round: it moves up and down with the heap's
	// collections around a level that settles in the warm-up; a leak
	// raises the level, in the second half of the rounds as in the first.
	var rss, initRSS []int
	for i := soakWarmUp; i < soakWarmUp+rounds; i++ {
		soak.round(i)
		soak.manageBoxes(i)
		f := soak.footprint()
		rss, initRSS = append(rss, f.rssKB), append(initRSS, f.boxInitRSSKB)
	}
	after := soak.footprint()
	t.Logf("%d requests in %v; after the warm-up %+v, at the end %+v; RSS (kB) after each round: sandboxd %v, box 0's init %v",
		soak.sent, time.Since(start).Round(time.Millisecond), before, after, rss, initRSS)
	for _, grew := range []struct {
		who           string
		before, after int
		rounds        []int
	}{{"sandboxd", before.rssKB, after.rssKB, rss}, {"box 0's init", before.boxInitRSSKB, after.boxInitRSSKB, initRSS}} {
		// The halves' medians tell a level only from a few readings each:
		// one reading a half (the emulated machine's 2 rounds) is within
		// the heap's own swing, and only the end is held to the warm-up.
		half := len(grew.rounds) / 2
		first, second := medianKB(grew.rounds[:half]), medianKB(grew.rounds[half:])
		if (half >= 2 && second > first+soakRSSSlack/2) || grew.after > grew.before+soakRSSSlack {
			t.Errorf("%s's memory grew: %d kB after the warm-up, %d at the end; medians %d kB over the first half of the rounds, %d over the second (kB after each round: %v)",
				grew.who, grew.before, grew.after, first, second, grew.rounds)
		}
	}
	if after.fds != before.fds || after.boxInitFDs != before.boxInitFDs {
		t.Errorf("descriptors leaked: from %+v to %+v", before, after)
	}
	if after.processes != before.processes || after.cgroups != before.cgroups || after.mounts != before.mounts {
		t.Errorf("runs or boxes left processes, cgroups or mounts: from %+v to %+v", before, after)
	}

	s.in.Close()
	if extra, ok := <-replies; ok {
		t.Errorf("a reply no request asked for: %s", extra)
	}
	if code := s.wait(); code != 0 {
		t.Fatalf("exit code %d at end of input (stderr: %s)", code, s.stderr.String())
	}
	if left := leftovers(s.stateDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

type soaker struct {
	t       *testing.T
	s       *server
	replies chan []byte
	rng     *rand.Rand
	// files is what each box's /space holds besides the probe, as the
	// requests sent so far leave it: name → content.
	files    map[int]map[string]string
	sent     int
	nextID   int
	probe    string // the probe program, base64
	requests int    // pipelined requests a round
}

// next reads the next reply, or fails the test after a minute without one.
func (k *soaker) next() obj {
	k.t.Helper()
	select {
	case line, ok := <-k.replies:
		if !ok {
			k.t.Fatalf("sandboxd stopped answering (stderr: %s)", k.s.stderr.String())
		}
		return validReply(k.t, line)
	case <-time.After(time.Minute):
		k.t.Fatalf("no reply within a minute (stderr: %s)", k.s.stderr.String())
	}
	return nil
}

// call sends one request and waits for its reply.
func (k *soaker) call(req obj) obj {
	k.t.Helper()
	k.s.send(mustJSON(req))
	k.sent++
	r := k.next()
	if e, bad := r["error"]; bad {
		k.t.Fatalf("%v: %v", req, e)
	}
	return r
}

func (k *soaker) installProbe(box int) {
	k.call(obj{"command": "write_file", "box": box, "path": "probe", "content_base64": k.probe, "mode": 0o755})
	k.files[box] = map[string]string{}
}

// round pipelines k.requests requests across the boxes, then reads every
// reply and matches each to its request by id.
func (k *soaker) round(n int) {
	t := k.t
	reqs := map[string]soakRequest{}
	var lines []string
	noID := 0
	for i := 0; i < k.requests; i++ {
		box := k.rng.IntN(soakBoxes)
		req, expect := k.randomRequest(box)
		if req == nil { // a request without id: matched by count
			noID++
			lines = append(lines, `{"command":"version"}`)
			continue
		}
		// Ids are integers and strings, both echoed as sent.
		k.nextID++
		var id any = k.nextID
		if k.nextID%2 == 0 {
			id = fmt.Sprintf("r%d-%d", n, i)
		}
		req["id"] = id
		line := mustJSON(req)
		reqs[fmt.Sprint(id)] = soakRequest{line, expect}
		lines = append(lines, line)
	}
	sendErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(k.s.in)
		for _, l := range lines {
			if _, err := w.WriteString(l + "\n"); err != nil {
				sendErr <- err
				return
			}
		}
		sendErr <- w.Flush()
	}()
	k.sent += len(lines)
	answered := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		r := k.next()
		id, has := r["id"]
		if !has {
			if noID--; noID < 0 {
				t.Fatalf("round %d: a reply without id that no request asked for: %v", n, r)
			}
			if r["protocol"] != 1.0 {
				t.Errorf("round %d: version without id: %v", n, r)
			}
			continue
		}
		key := fmt.Sprint(id)
		req, known := reqs[key]
		switch {
		case !known:
			t.Fatalf("round %d: a reply to id %v, which no request had: %v", n, id, r)
		case answered[key]:
			t.Fatalf("round %d: id %v answered twice: %v", n, id, r)
		}
		answered[key] = true
		if problem := req.expect(r); problem != "" {
			t.Errorf("round %d: %s\n  request: %s\n  reply:   %v", n, problem, req.line, r)
		}
	}
	if err := <-sendErr; err != nil {
		t.Fatalf("send: %v", err)
	}
}

// randomRequest makes a request on box and what its reply must be, given
// what the box holds; it updates the model as the request will. A nil
// request stands for one without id.
func (k *soaker) randomRequest(box int) (obj, expectation) {
	files := k.files[box]
	name := fmt.Sprintf("f%d", k.rng.IntN(12))
	content, exists := files[name]
	probeRun := func(limits obj, args ...string) obj {
		req := obj{"command": "run", "box": box, "argv": append([]string{"./probe"}, args...), "cpu_time_limit": 2.0, "real_time_limit": 10.0, "processes_limit": 4}
		for key, v := range limits {
			req[key] = v
		}
		return req
	}
	switch p := k.rng.IntN(100); {
	case p < 24:
		code := k.rng.IntN(256)
		return probeRun(nil, "exit", strconv.Itoa(code)), verdict("OK", &code)
	case p < 28:
		sig := -11
		return probeRun(nil, "segv"), verdict("Signaled", &sig)
	case p < 30:
		return probeRun(obj{"cpu_time_limit": 0.02}, "spin", "0"), verdict("CPUTimeLimitExceeded", nil)
	case p < 32:
		return probeRun(obj{"real_time_limit": 0.03}, "pause"), verdict("RealTimeLimitExceeded", nil)
	case p < 34:
		return probeRun(obj{"idleness_time_limit": 0.03}, "pause"), verdict("IdlenessTimeLimitExceeded", nil)
	case p < 36:
		return probeRun(obj{"memory_limit": 16 << 20}, "mem", "64"), verdict("MemoryLimitExceeded", nil)
	case p < 38:
		return obj{"command": "run", "box": box, "argv": []string{"./no-such-program"}, "cpu_time_limit": 1.0, "processes_limit": 1}, failure("exec_failed")
	case p < 40:
		return probeRun(obj{"stdin": "no-such-input"}, "exit", "0"), failure("exec_failed")
	case p < 46: // a run that writes a file the judge reads later
		token := fmt.Sprintf("t%d", k.rng.Uint32())
		files[name] = token + "\n"
		req := obj{"command": "run", "box": box, "argv": []string{"sh", "-c", `echo "$0" > "$1"`, token, name}, "cpu_time_limit": 2.0, "real_time_limit": 10.0, "processes_limit": 4}
		zero := 0
		return req, verdict("OK", &zero)
	case p < 64:
		content := fmt.Sprintf("%d é %s\n", k.rng.Uint64(), strings.Repeat("x", k.rng.IntN(3000)))
		files[name] = content
		return obj{"command": "write_file", "box": box, "path": name, "content": content}, field("size", float64(len(content)))
	case p < 78:
		req := obj{"command": "read_file", "box": box, "path": name}
		if !exists {
			return req, failure("no_such_file")
		}
		return req, func(r obj) string {
			if r["content"] != content || r["size"] != float64(len(content)) || r["truncated"] != false {
				return fmt.Sprintf("read_file: want content %q", content)
			}
			return ""
		}
	case p < 86:
		want := []string{"probe"}
		for f := range files {
			want = append(want, f)
		}
		sort.Strings(want)
		return obj{"command": "list_files", "box": box}, func(r obj) string {
			entries, _ := r["entries"].([]any)
			var got []string
			for _, e := range entries {
				got = append(got, e.(map[string]any)["name"].(string))
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				return fmt.Sprintf("list_files: want %v", want)
			}
			return ""
		}
	case p < 96:
		req := obj{"command": "remove_file", "box": box, "path": name}
		if !exists {
			return req, failure("no_such_file")
		}
		delete(files, name)
		return req, func(r obj) string {
			if len(r) != 1 {
				return "remove_file: want {}"
			}
			return ""
		}
	case p < 98:
		return obj{"command": "run", "box": 99, "argv": []string{"/bin/true"}, "cpu_time_limit": 1.0, "processes_limit": 1}, failure("no_such_box")
	}
	return nil, nil
}

func verdict(want string, exitCode *int) expectation {
	return func(r obj) string {
		code, has := r["exit_code"]
		switch {
		case r["limit_verdict"] != want:
			return "verdict: want " + want
		case exitCode == nil && has, exitCode != nil && code != float64(*exitCode):
			return fmt.Sprintf("exit_code: want %v", exitCode)
		}
		return ""
	}
}

func failure(code string) expectation {
	return func(r obj) string {
		if e, _ := r["error"].(map[string]any); e == nil || e["code"] != code {
			return "want error " + code
		}
		return ""
	}
}

func field(key string, want any) expectation {
	return func(r obj) string {
		if r[key] != want {
			return fmt.Sprintf("%s: want %v", key, want)
		}
		return ""
	}
}

// manageBoxes resets one box behind file commands of its own (never behind
// a run: close_box and reset_box may kill a run in flight), then closes
// another, sees it gone, and opens it again.
func (k *soaker) manageBoxes(n int) {
	t := k.t
	reset := n % soakBoxes
	k.s.send(mustJSON(obj{"command": "write_file", "id": "m-write", "box": reset, "path": "before-reset", "content": "x"}))
	k.s.send(mustJSON(obj{"command": "reset_box", "id": "m-reset", "box": reset}))
	k.s.send(mustJSON(obj{"command": "list_files", "id": "m-list", "box": reset}))
	k.sent += 3
	got := map[any]obj{}
	for i := 0; i < 3; i++ {
		r := k.next()
		got[r["id"]] = r
	}
	if got["m-write"]["size"] != 1.0 || len(got["m-reset"]) != 1 {
		t.Errorf("write_file, reset_box: %v", got)
	}
	if entries, _ := got["m-list"]["entries"].([]any); entries == nil || len(entries) != 0 {
		t.Errorf("after reset_box %d: %v", reset, got["m-list"])
	}
	k.installProbe(reset)

	closed := 1 + n%(soakBoxes-1)
	k.call(obj{"command": "close_box", "box": closed})
	k.s.send(mustJSON(obj{"command": "list_files", "box": closed}))
	k.sent++
	expectError(t, k.next(), "no_such_box")
	if box := k.call(obj{"command": "open_box"})["box"]; box != float64(closed) {
		t.Fatalf("open_box after closing box %d gave %v", closed, box)
	}
	k.installProbe(closed)
}

func medianKB(kb []int) int {
	s := slices.Clone(kb)
	slices.Sort(s)
	return s[len(s)/2]
}

// footprint is what sandboxd holds between rounds, when no request is in
// flight and the same boxes are open. A box readies its next run in the
// background (its cgroup), so the footprint is read until readings a
// moment apart agree.
type footprint struct {
	rssKB, fds                 int // sandboxd's
	boxInitRSSKB, boxInitFDs   int // box 0's init, which lives as long as sandboxd
	processes, cgroups, mounts int // sandboxd's descendants; cgroups and mounts of its boxes
}

func (k *soaker) footprint() footprint {
	// A box keeps its last run's cgroup until its next run's accounting
	// is made, so a box just opened or reset holds one fewer: each box
	// runs first, and all are alike.
	for box := 0; box < soakBoxes; box++ {
		if r := k.call(with(run("true"), "box", box)); r["limit_verdict"] != "OK" {
			k.t.Errorf("true in box %d: %v", box, r)
		}
	}
	// Settled: the same counts for three readings over 200 ms. A spare box
	// being built, or the last run's files being closed, come and go in
	// that time even on an emulated machine (two readings 50 ms apart were
	// not enough in the cgroup v2 guest: 32 descriptors, then 30).
	f, same := k.footprintNow(), 0
	for i := 0; i < 50 && same < 2; i++ {
		time.Sleep(100 * time.Millisecond)
		g := k.footprintNow()
		if g.fds == f.fds && g.boxInitFDs == f.boxInitFDs && g.processes == f.processes && g.cgroups == f.cgroups {
			same++
		} else {
			same = 0
		}
		f = g
	}
	return f
}

func (k *soaker) footprintNow() footprint {
	t := k.t
	pid := k.s.cmd.Process.Pid
	var f footprint
	children := k.settledDescendants()
	f.rssKB, f.fds = processFootprint(t, pid)
	f.processes = len(children)
	// Box 0's init is the one whose /space is box 0's.
	space0, err := os.Stat(filepath.Join(k.s.boxDir(0), "space"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		if space, err := os.Stat(fmt.Sprintf("/proc/%d/root/space", c)); err == nil && isBoxInit(c) && os.SameFile(space, space0) {
			f.boxInitRSSKB, f.boxInitFDs = processFootprint(t, c)
		}
	}
	if f.boxInitFDs == 0 {
		t.Fatalf("no init of box 0 among sandboxd's processes %v", children)
	}
	for _, root := range cgroupsOf(k.s.stateDir) {
		filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				f.cgroups++
			}
			return nil
		})
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	f.mounts = strings.Count(string(mounts), k.s.stateDir)
	return f
}

// processFootprint reads a process's resident memory (kB) and open descriptors.
func processFootprint(t *testing.T, pid int) (rssKB, fds int) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return rssKB, len(entries)
}

// descendants lists the processes below pid.
func isBoxInit(pid int) bool {
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(cmdline) == "sandboxd-box\x00"
}

// settledDescendants lists sandboxd's descendants once every box
// directory, the spare's that sandboxd prepares included, has its init:
// the spare is built again whenever a box takes it.
func (k *soaker) settledDescendants() []int {
	for deadline := time.Now().Add(5 * time.Second); ; {
		children := descendants(k.s.cmd.Process.Pid)
		inits := 0
		for _, c := range children {
			if isBoxInit(c) {
				inits++
			}
		}
		dirs, _ := os.ReadDir(filepath.Join(k.s.stateDir, "boxes"))
		if inits == len(dirs) || time.Now().After(deadline) {
			return children
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func descendants(pid int) []int {
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		child, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if len(fields) > 1 {
			parent[child], _ = strconv.Atoi(fields[1])
		}
	}
	var out []int
	for child := range parent {
		for p := parent[child]; p > 1; p = parent[p] {
			if p == pid {
				out = append(out, child)
				break
			}
		}
	}
	sort.Ints(out)
	return out
}
