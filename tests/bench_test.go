package tests

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmarks print their figures beside a baseline measured in the same
// run: `make bench`. Latencies are medians over the iterations.

// median sorts d and returns its middle value.
func median[T cmp.Ordered](d []T) T {
	slices.Sort(d)
	return d[len(d)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkRunTrue: `run /bin/true` in a reused box, end to end over the
// protocol, back to back as a judge sends a submission's tests, against a
// bare fork+exec+wait of /bin/true from Go, and against the protocol floor:
// the same requests to a server that runs them with no sandbox at all
// (serveFloor), which is what any sandbox a judge drives over a pipe costs
// at least. The three go in alternate blocks: a bare spawn right after a
// reply would share the machine with sandboxd's work between runs (the
// next run's cgroup), and be the slower for it.
func BenchmarkRunTrue(b *testing.B) {
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	floor := startFloorServer(t)
	defer floor.wait()
	req, _ := json.Marshal(obj{"command": "run", "argv": []string{"/bin/true"}, "cpu_time_limit": 1.0, "processes_limit": 1, "real_time_limit": 5.0})
	line := string(req)
	bare := func() {
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ { // warm up every path
		s.call(line)
		floor.call(line)
		bare()
	}
	const block = 50
	var box, overFloor, bareTimes, inBox []time.Duration
	timed := func(into *[]time.Duration, f func()) {
		for i := 0; i < block && len(*into) < b.N; i++ {
			start := time.Now()
			f()
			*into = append(*into, time.Since(start))
		}
	}
	b.ResetTimer()
	for len(box) < b.N {
		timed(&box, func() {
			r := s.call(line)
			if r["limit_verdict"] != "OK" {
				b.Fatalf("run /bin/true: %v", r)
			}
			inBox = append(inBox, time.Duration(r["real_time"].(float64)*float64(time.Second)))
		})
		timed(&overFloor, func() {
			if r := floor.call(line); r["limit_verdict"] != "OK" {
				b.Fatalf("run /bin/true on the protocol floor: %v", r)
			}
		})
		timed(&bareTimes, bare)
	}
	b.StopTimer()
	mb, mfloor, mbare, mInBox := median(box), median(overFloor), median(bareTimes), median(inBox)
	b.ReportMetric(ms(mb), "sandboxd-ms")
	b.ReportMetric(ms(mfloor), "floor-ms")
	b.ReportMetric(ms(mbare), "bare-ms")
	b.ReportMetric(float64(mb)/float64(mbare), "ratio")
	b.ReportMetric(float64(mfloor)/float64(mbare), "floor-ratio")
	// Where the time goes: the program's own life in the box (its real_time,
	// fork to reap in the init), and the rest, sandboxd's hops and work.
	b.ReportMetric(ms(mInBox), "program-ms")
	fmt.Printf("run /bin/true over the protocol: median %.3f ms (the program's real_time %.3f ms, the rest %.3f ms); bare fork+exec+wait: %.3f ms; ratio %.2f (target <= 1.2x)\n",
		ms(mb), ms(mInBox), ms(mb)-ms(mInBox), ms(mbare), float64(mb)/float64(mbare))
	fmt.Printf("the protocol floor (the same requests, run with no sandbox): median %.3f ms, ratio %.2f to bare; sandboxd is %.3f ms over it\n",
		ms(mfloor), float64(mfloor)/float64(mbare), ms(mb)-ms(mfloor))
}

// BenchmarkCPULimitKill: a busy loop under a 1 s CPU limit. A single thread
// gains CPU time at the rate of wall time, so real_time - 1 s is how long
// after the limit the kill landed.
func BenchmarkCPULimitKill(b *testing.B) {
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	s.installProbe(0)
	var cpu, late []float64
	for i := 0; i < max(b.N, 10); i++ { // a median and a maximum need several runs

		r := s.call(obj{"command": "run", "argv": []string{"./probe", "spin", "0"}, "cpu_time_limit": 1.0, "processes_limit": 1})
		if r["limit_verdict"] != "CPUTimeLimitExceeded" {
			b.Fatalf("busy loop: %v", r)
		}
		cpu = append(cpu, r["cpu_time"].(float64))
		late = append(late, r["real_time"].(float64)-1)
	}
	sort.Float64s(cpu)
	sort.Float64s(late)
	b.ReportMetric(cpu[len(cpu)/2], "cpu-s")
	b.ReportMetric(cpu[len(cpu)-1], "max-cpu-s")
	b.ReportMetric(late[len(late)-1]*1000, "max-late-ms")
	fmt.Printf("1 s CPU limit over %d runs: cpu_time median %.4f s, max %.4f s (target [1.000, 1.010]); killed at most %.1f ms after the limit (target 15 ms; isolate 80-100, go-judge 40-100)\n",
		len(cpu), cpu[len(cpu)/2], cpu[len(cpu)-1], late[len(late)-1]*1000)
}

// BenchmarkTwoBoxes: pipelined short runs on one box, then spread over two
// boxes; two CPUs should nearly double the throughput.
func BenchmarkTwoBoxes(b *testing.B) {
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	s.installProbe(0)
	s.ok(obj{"command": "open_box"})
	s.installProbe(1)
	const batch = 40
	throughput := func(boxes int) float64 {
		start := time.Now()
		for i := 0; i < batch; i++ {
			s.send(mustJSON(obj{"command": "run", "id": i, "box": i % boxes, "argv": []string{"./probe", "spin", "0.01"}, "cpu_time_limit": 1.0, "processes_limit": 1}))
		}
		for i := 0; i < batch; i++ {
			if r := s.recv(); r["limit_verdict"] != "OK" {
				b.Fatalf("run: %v", r)
			}
		}
		return batch / time.Since(start).Seconds()
	}
	var one, two float64
	for i := 0; i < b.N; i++ {
		one += throughput(1)
		two += throughput(2)
	}
	b.ReportMetric(one/float64(b.N), "runs/s-1box")
	b.ReportMetric(two/float64(b.N), "runs/s-2boxes")
	b.ReportMetric(two/one, "speedup")
	fmt.Printf("10 ms CPU runs: one box %.1f runs/s, two boxes %.1f runs/s: %.2fx (target >= 1.8x)\n", one/float64(b.N), two/float64(b.N), two/one)
}

// judgePause is the least time a judge spends between two box commands
// (a submission's compile and tests): time sandboxd has to prepare the next box.
const judgePause = 100 * time.Millisecond

// BenchmarkResetBox: reset_box of a box that a run used, until its reply
// (the box's new init has built the box by then), after a judge's pause and
// back to back, beside a bare fork+exec+wait of /bin/true and a bare
// unshare of a box's namespaces, measured in the same run.
func BenchmarkResetBox(b *testing.B) {
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	line := mustJSON(obj{"command": "run", "argv": []string{"sh", "-c", "echo x > f; echo y > /tmp/f"}, "cpu_time_limit": 1.0, "processes_limit": 2})
	reset := func() time.Duration {
		if r := s.call(line); r["limit_verdict"] != "OK" {
			b.Fatalf("run: %v", r)
		}
		start := time.Now()
		if r := s.call(obj{"command": "reset_box"}); r["error"] != nil {
			b.Fatalf("reset_box: %v", r)
		}
		return time.Since(start)
	}
	var paused, backToBack []time.Duration
	bases := newBaselines(b)
	for i := 0; i < b.N; i++ {
		time.Sleep(judgePause)
		paused = append(paused, reset())
		backToBack = append(backToBack, reset())
		bases.measure()
	}
	mp, mb := median(paused), median(backToBack)
	b.ReportMetric(ms(mp), "reset-ms")
	b.ReportMetric(ms(mb), "reset-back-to-back-ms")
	bases.report()
	fmt.Printf("reset_box (median of %d): after a %v pause %.2f ms (%.1fx bare fork+exec+wait), back to back %.2f ms; %s\n",
		b.N, judgePause, ms(mp), float64(mp)/float64(bases.fork()), ms(mb), bases)
}

// BenchmarkOpenBox: open_box of a new box until its reply (its init has
// built the box), after a judge's pause and back to back, each closed
// after, beside the baselines.
func BenchmarkOpenBox(b *testing.B) {
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	open := func() time.Duration {
		start := time.Now()
		r := s.call(obj{"command": "open_box"})
		took := time.Since(start)
		if r["error"] != nil {
			b.Fatalf("open_box: %v", r)
		}
		if r := s.call(obj{"command": "close_box", "box": r["box"]}); r["error"] != nil {
			b.Fatalf("close_box: %v", r)
		}
		return took
	}
	var paused, backToBack []time.Duration
	bases := newBaselines(b)
	for i := 0; i < b.N; i++ {
		time.Sleep(judgePause)
		paused = append(paused, open())
		backToBack = append(backToBack, open())
		bases.measure()
	}
	mp, mb := median(paused), median(backToBack)
	b.ReportMetric(ms(mp), "open-ms")
	b.ReportMetric(ms(mb), "open-back-to-back-ms")
	bases.report()
	fmt.Printf("open_box (median of %d): after a %v pause %.2f ms (target <= 10 ms), back to back %.2f ms; %s\n",
		b.N, judgePause, ms(mp), ms(mb), bases)
}

// BenchmarkStart: sandboxd started on a new state dir until its reply to a
// first `version`, and until a first `run /bin/true` in box 0 (sent at
// start, with the version), beside the baselines.
func BenchmarkStart(b *testing.B) {
	var first, firstRun []time.Duration
	bases := newBaselines(b)
	version := mustJSON(obj{"command": "version", "id": "v"})
	runTrue := mustJSON(obj{"command": "run", "id": "r", "argv": []string{"/bin/true"}, "cpu_time_limit": 1.0, "processes_limit": 1})
	for i := 0; i < b.N; i++ {
		t := &testing.T{}
		s := newServer(t, b.TempDir())
		start := time.Now()
		s.start()
		s.send(version)
		s.send(runTrue)
		for range 2 {
			r := s.recv()
			switch {
			case r["id"] == "v" && r["version"] != nil:
				first = append(first, time.Since(start))
			case r["id"] == "r" && r["limit_verdict"] == "OK":
				firstRun = append(firstRun, time.Since(start))
			default:
				b.Fatalf("reply %v (stderr: %s)", r, s.stderr.String())
			}
		}
		if code := s.wait(); code != 0 {
			b.Fatalf("exit code %d (stderr: %s)", code, s.stderr.String())
		}
		bases.measure()
	}
	mf, mr := median(first), median(firstRun)
	b.ReportMetric(ms(mf), "first-reply-ms")
	b.ReportMetric(ms(mr), "first-run-ms")
	bases.report()
	fmt.Printf("start (median of %d): first reply %.2f ms (target <= 20 ms), first run in box 0 %.2f ms; %s\n", b.N, ms(mf), ms(mr), bases)
}

// baselines are what a box command is compared with, measured in the same
// run: a bare fork+exec+wait of /bin/true, and a bare unshare(1) of a box's
// namespaces running /bin/true as the first process of its pid namespace.
type baselines struct {
	b             *testing.B
	forks, shares []time.Duration
}

func newBaselines(b *testing.B) *baselines { return &baselines{b: b} }

func (l *baselines) measure() {
	for _, c := range []struct {
		into *[]time.Duration
		argv []string
	}{{&l.forks, []string{"/bin/true"}}, {&l.shares, []string{"unshare", "--pid", "--fork", "--mount", "--net", "--ipc", "--uts", "/bin/true"}}} {
		start := time.Now()
		if out, err := exec.Command(c.argv[0], c.argv[1:]...).CombinedOutput(); err != nil {
			l.b.Fatalf("%v: %v: %s", c.argv, err, out)
		}
		*c.into = append(*c.into, time.Since(start))
	}
}

func (l *baselines) fork() time.Duration { return median(l.forks) }

func (l *baselines) report() {
	l.b.ReportMetric(ms(l.fork()), "bare-ms")
	l.b.ReportMetric(ms(median(l.shares)), "unshare-ms")
}

func (l *baselines) String() string {
	return fmt.Sprintf("baselines: bare fork+exec+wait %.2f ms, unshare of a box's namespaces %.2f ms", ms(l.fork()), ms(median(l.shares)))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// BenchmarkPingPong: 10,000 one-line exchanges between an interactor and a
// solution in two boxes joined by run_group's pipes, against the same two
// programs as bare processes on pipes. The ping side times its own loop, so
// that the start of the boxes is not counted, and each side tells the CPUs
// it ran on. Where the two sides run decides the figure more than anything
// else: on one CPU an exchange is a switch between them; across two it is a
// wake-up of the other CPU, several times slower on these virtual machines,
// and slower still while that CPU is busy. Left to the scheduler, each
// measurement lands in one layout or the other by chance (boxes read 0.5x
// bare so), so each layout is measured against a baseline laid out alike:
// both sides on one CPU (sandboxd started on it: its boxes inherit its
// affinity; the bare pair pinned there), and each side on a CPU of its own
// (sandboxd --cpus, which gives each program of a group its own CPU; the
// bare pair pinned alike).
func BenchmarkPingPong(b *testing.B) {
	const exchanges = "10000"
	t := &testing.T{}
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		b.Skipf("this host gives %d CPU: the layout on two needs two", len(cpus))
	}
	bin := filepath.Join(b.TempDir(), "pingpong")
	layouts := []struct {
		name, metric string
		ping, pong   int
		serve        func() *server
	}{
		{fmt.Sprintf("both sides on CPU %d", cpus[1]), "ratio-1cpu", cpus[1], cpus[1], func() *server {
			s := newServer(t, t.TempDir())
			s.cmd.Args = append([]string{"taskset", "-c", strconv.Itoa(cpus[1])}, s.cmd.Args...)
			s.cmd.Path, s.cmd.Err = exec.LookPath("taskset")
			s.start()
			return s
		}},
		{fmt.Sprintf("each side on its own CPU, %d and %d", cpus[0], cpus[1]), "ratio-2cpus", cpus[0], cpus[1], func() *server {
			return startServer(t, "--cpus", cpuListArg(cpus[:2]))
		}},
	}
	for _, l := range layouts {
		s := l.serve()
		box := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		installProg(t, s, "pingpong", 0, box)
		if t.Failed() {
			b.Fatal("install pingpong")
		}
		if err := os.WriteFile(bin, progs["pingpong"], 0o755); err != nil {
			b.Fatal(err)
		}
		group := mustJSON(obj{"command": "run_group",
			"programs": []obj{
				{"box": 0, "argv": []string{"./pingpong", "ping", exchanges}, "stderr": "took", "cpu_time_limit": 10.0, "processes_limit": 1},
				{"box": box, "argv": []string{"./pingpong", "pong"}, "stderr": "took", "cpu_time_limit": 10.0, "processes_limit": 1}},
			"pipes": []obj{pipe(0, 1, 1, 0), pipe(1, 1, 0, 0)}})
		inBoxes := func() (time.Duration, string) {
			if r := s.call(group); r["error"] != nil {
				b.Fatalf("run_group: %v", r)
			}
			ping := s.ok(obj{"command": "read_file", "path": "took"})["content"].(string)
			pong := s.ok(obj{"command": "read_file", "box": box, "path": "took"})["content"].(string)
			return pingPongFigures(b, ping, pong)
		}
		bare := func() (time.Duration, string) {
			ping := exec.Command("taskset", "-c", strconv.Itoa(l.ping), bin, "ping", exchanges)
			pong := exec.Command("taskset", "-c", strconv.Itoa(l.pong), bin, "pong")
			toPong, fromPing := barePipe(b)
			toPing, fromPong := barePipe(b)
			ping.Stdout, pong.Stdin, pong.Stdout, ping.Stdin = fromPing, toPong, fromPong, toPing
			pingSaid, pongSaid := filepath.Join(b.TempDir(), "ping"), filepath.Join(b.TempDir(), "pong")
			for _, f := range []struct {
				cmd  *exec.Cmd
				path string
			}{{ping, pingSaid}, {pong, pongSaid}} {
				said, err := os.Create(f.path)
				if err != nil {
					b.Fatal(err)
				}
				defer said.Close()
				f.cmd.Stderr = said
			}
			if err := pong.Start(); err != nil {
				b.Fatal(err)
			}
			if err := ping.Start(); err != nil {
				b.Fatal(err)
			}
			// Only the two hold the pipes now, as in a group.
			for _, f := range []*os.File{toPong, fromPing, toPing, fromPong} {
				f.Close()
			}
			if err := errors.Join(ping.Wait(), pong.Wait()); err != nil {
				b.Fatal(err)
			}
			pingOut, _ := os.ReadFile(pingSaid)
			pongOut, _ := os.ReadFile(pongSaid)
			return pingPongFigures(b, string(pingOut), string(pongOut))
		}
		var boxed, plain []time.Duration
		whereBoxed, wherePlain := map[string]int{}, map[string]int{}
		for i := 0; i < max(b.N, 5); i++ {
			took, where := inBoxes()
			boxed, whereBoxed[where] = append(boxed, took), whereBoxed[where]+1
			took, where = bare()
			plain, wherePlain[where] = append(plain, took), wherePlain[where]+1
		}
		s.wait()
		mb, mp := median(boxed), median(plain)
		b.ReportMetric(float64(mb)/float64(mp), l.metric)
		fmt.Printf("ping-pong of %s one-line exchanges, %s: two boxes %.1f ms, bare processes on pipes %.1f ms; ratio %.2f (target <= 1.3x); ran on: boxes %s, bare %s\n",
			exchanges, l.name, ms(mb), ms(mp), float64(mb)/float64(mp), placements(whereBoxed), placements(wherePlain))
	}
}

// barePipe makes a pipe as run_group makes one (executor.GroupPipes): of 1
// MiB, and blocking, so that this process's poller does not watch it; an
// exec.Cmd pipe is in the poller, which every line written then wakes (the
// baseline read 2.3x the boxes so).
func barePipe(b *testing.B) (r, w *os.File) {
	var fds [2]int
	if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
		b.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, 1<<20); err != nil {
		b.Fatal(err)
	}
	return os.NewFile(uintptr(fds[0]), "pipe"), os.NewFile(uintptr(fds[1]), "pipe")
}

// pingPongFigures reads what the two sides of pingpong said: how long the
// exchanges took, and where each side ran ("ping 0 pong 1", or with the
// counts of each CPU when a side moved).
func pingPongFigures(b *testing.B, ping, pong string) (time.Duration, string) {
	lines := strings.Split(strings.TrimSpace(ping), "\n")
	ns, err := strconv.ParseInt(lines[0], 10, 64)
	if err != nil || len(lines) != 2 {
		b.Fatalf("ping said %q", ping)
	}
	where := func(said string) string {
		cpus := strings.Fields(strings.TrimPrefix(strings.TrimSpace(said), "cpus"))
		if len(cpus) == 1 {
			cpu, _, _ := strings.Cut(cpus[0], ":")
			return cpu
		}
		return "(" + strings.Join(cpus, " ") + ")"
	}
	return time.Duration(ns), "ping " + where(lines[1]) + " pong " + where(pong)
}

// placements lists the layouts seen, with how many runs had each.
func placements(seen map[string]int) string {
	var out []string
	for _, where := range slices.Sorted(maps.Keys(seen)) {
		out = append(out, fmt.Sprintf("%s (%d)", where, seen[where]))
	}
	return strings.Join(out, ", ")
}

// BenchmarkCPUTimeSpread: the spread of cpu_time of a fixed amount of CPU
// work (about 0.5 s of this machine's) with the other core busy (a busy loop
// pinned to it), in a sandboxd without pinning and in one with --cpus on the
// job's core, their runs interleaved.
func BenchmarkCPUTimeSpread(b *testing.B) {
	t := &testing.T{}
	cpus := hostCPUs(t)
	if len(cpus) < 2 {
		b.Skipf("this host gives %d CPU: a job beside a busy core needs two", len(cpus))
	}
	busyCPU, jobCPU := strconv.Itoa(cpus[0]), strconv.Itoa(cpus[1])
	out, err := exec.Command("taskset", "-c", jobCPU, probePath, "rounds", "0.5").Output()
	if err != nil {
		b.Fatal(err)
	}
	rounds := strings.TrimSpace(string(out))
	servers := []*server{startServer(t), startServer(t, "--cpus", jobCPU)}
	for _, s := range servers {
		defer s.wait()
		s.installProbe(0)
	}
	busy := exec.Command("taskset", "-c", busyCPU, probePath, "spin", "0")
	if err := busy.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	req := obj{"command": "run", "argv": []string{"./probe", "work", rounds}, "cpu_time_limit": 5.0, "processes_limit": 1}
	times := make([][]float64, len(servers))
	for i := 0; i < max(b.N, 20); i++ {
		for j, s := range servers {
			r := s.call(req)
			if r["limit_verdict"] != "OK" {
				b.Fatalf("run: %v", r)
			}
			times[j] = append(times[j], r["cpu_time"].(float64))
		}
	}
	stats := func(v []float64) (lo, med, hi, sd float64) {
		sorted := slices.Sorted(slices.Values(v))
		mean := 0.0
		for _, x := range v {
			mean += x / float64(len(v))
		}
		for _, x := range v {
			sd += (x - mean) * (x - mean) / float64(len(v)-1)
		}
		return sorted[0], sorted[len(sorted)/2], sorted[len(sorted)-1], math.Sqrt(sd)
	}
	fmt.Printf("cpu_time of %s rounds of work (calibrated to 0.5 s just before) over %d runs each, CPU %s busy:\n", rounds, len(times[0]), busyCPU)
	for j, name := range []string{"not pinned", "--cpus " + jobCPU} {
		lo, med, hi, sd := stats(times[j])
		b.ReportMetric(sd*1000, []string{"sd-ms-unpinned", "sd-ms-pinned"}[j])
		fmt.Printf("  %-11s min %.4f s, median %.4f s, max %.4f s, sd %.2f ms (max-min %.1f ms)\n", name, lo, med, hi, sd*1000, (hi-lo)*1000)
	}
}

// BenchmarkMemfds: testdata/progs/memfds.c (two 1 MiB memfds, the first
// closed before the second) under memory_limit 1258291, 25 runs in each of
// b.N fresh boxes, unpinned and pinned to one CPU (--cpus): how often it
// fits, in the first run of a box and the later ones.
func BenchmarkMemfds(b *testing.B) {
	t := &testing.T{}
	for _, pinned := range []bool{false, true} {
		var args []string
		if pinned {
			cpus := hostCPUs(t)
			args = []string{"--cpus", cpuListArg(cpus[len(cpus)-1:])}
		}
		s := startServer(t, args...)
		verdicts := map[any]int{}
		first := map[any]int{}
		for i := 0; i < b.N; i++ {
			box := int(num(t, s.ok(obj{"command": "open_box"}), "box"))
			installProg(t, s, "memfds", box)
			for j := 0; j < 25; j++ {
				r := s.ok(with(run("./memfds", "1"), "box", box, "memory_limit", 1258291))
				verdicts[r["limit_verdict"]]++
				if j == 0 {
					first[r["limit_verdict"]]++
				}
			}
			s.ok(obj{"command": "close_box", "box": box})
		}
		s.wait()
		if t.Failed() {
			b.Fatal("a request failed")
		}
		b.ReportMetric(float64(verdicts["OK"])/float64(25*b.N), map[bool]string{false: "ok-unpinned", true: "ok-pinned"}[pinned])
		fmt.Printf("memfds under 1258291, pinned %v: OK in %d of %d runs (first runs of a box: %d of %d); verdicts %v\n",
			pinned, verdicts["OK"], 25*b.N, first["OK"], b.N, verdicts)
	}
}
