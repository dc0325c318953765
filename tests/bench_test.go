package tests

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
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
// protocol, against a bare fork+exec+wait of /bin/true from Go.
func BenchmarkRunTrue(b *testing.B) {
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	req, _ := json.Marshal(obj{"command": "run", "argv": []string{"/bin/true"}, "cpu_time_limit": 1.0, "processes_limit": 1, "real_time_limit": 5.0})
	line := string(req)
	for i := 0; i < 20; i++ { // warm up both paths
		s.call(line)
		exec.Command("/bin/true").Run()
	}
	var box, bare []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if r := s.call(line); r["limit_verdict"] != "OK" {
			b.Fatalf("run /bin/true: %v", r)
		}
		box = append(box, time.Since(start))
		start = time.Now()
		if err := exec.Command("/bin/true").Run(); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(start))
	}
	b.StopTimer()
	mb, mbare := median(box), median(bare)
	b.ReportMetric(ms(mb), "sandboxd-ms")
	b.ReportMetric(ms(mbare), "bare-ms")
	b.ReportMetric(float64(mb)/float64(mbare), "ratio")
	fmt.Printf("run /bin/true over the protocol: median %.3f ms; bare fork+exec+wait: %.3f ms; ratio %.2f (target <= 1 ms, <= 1.5x)\n",
		ms(mb), ms(mbare), float64(mb)/float64(mbare))
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
// that the start of the boxes is not counted.
func BenchmarkPingPong(b *testing.B) {
	const exchanges = "10000"
	t := &testing.T{}
	s := startServer(t)
	defer s.wait()
	box := int(s.ok(obj{"command": "open_box"})["box"].(float64))
	installProg(t, s, "pingpong", 0, box)
	if t.Failed() {
		b.Fatal("install pingpong")
	}
	bin := filepath.Join(b.TempDir(), "pingpong")
	if err := os.WriteFile(bin, progs["pingpong"], 0o755); err != nil {
		b.Fatal(err)
	}
	group := mustJSON(obj{"command": "run_group",
		"programs": []obj{
			{"box": 0, "argv": []string{"./pingpong", "ping", exchanges}, "stderr": "took", "cpu_time_limit": 10.0, "processes_limit": 1},
			{"box": box, "argv": []string{"./pingpong", "pong"}, "cpu_time_limit": 10.0, "processes_limit": 1}},
		"pipes": []obj{pipe(0, 1, 1, 0), pipe(1, 1, 0, 0)}})
	inBoxes := func() time.Duration {
		if r := s.call(group); r["error"] != nil {
			b.Fatalf("run_group: %v", r)
		}
		took := s.ok(obj{"command": "read_file", "path": "took"})["content"].(string)
		ns, err := strconv.ParseInt(strings.TrimSpace(took), 10, 64)
		if err != nil {
			b.Fatalf("ping said %q", took)
		}
		return time.Duration(ns)
	}
	bare := func() time.Duration {
		ping, pong := exec.Command(bin, "ping", exchanges), exec.Command(bin, "pong")
		var took strings.Builder
		ping.Stderr = &took
		toPong, err := ping.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		pong.Stdin = toPong
		fromPong, err := pong.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		ping.Stdin = fromPong
		if err := pong.Start(); err != nil {
			b.Fatal(err)
		}
		if err := ping.Run(); err != nil {
			b.Fatal(err)
		}
		pong.Wait()
		ns, err := strconv.ParseInt(strings.TrimSpace(took.String()), 10, 64)
		if err != nil {
			b.Fatalf("ping said %q", took.String())
		}
		return time.Duration(ns)
	}
	var boxed, plain []time.Duration
	for i := 0; i < max(b.N, 5); i++ {
		boxed = append(boxed, inBoxes())
		plain = append(plain, bare())
	}
	mb, mp := median(boxed), median(plain)
	b.ReportMetric(ms(mb), "boxes-ms")
	b.ReportMetric(ms(mp), "bare-ms")
	b.ReportMetric(float64(mb)/float64(mp), "ratio")
	fmt.Printf("ping-pong of %s one-line exchanges: two boxes %.1f ms, bare processes on pipes %.1f ms; ratio %.2f (target <= 1.3x)\n",
		exchanges, ms(mb), ms(mp), float64(mb)/float64(mp))
}
