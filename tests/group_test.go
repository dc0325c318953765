package tests

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// progs are C programs of testdata/progs compiled once each, by name.
var (
	progsM sync.Mutex
	progs  = map[string][]byte{}
)

// installProg compiles testdata/progs/NAME.c (once) and puts it at
// /space/NAME of each box. SANDBOXD_PROGS names a directory of prebuilt
// ones (the cgroup v2 guest has no compiler time to spare).
func installProg(t *testing.T, s *server, name string, boxes ...int) {
	t.Helper()
	progsM.Lock()
	bin, ok := progs[name]
	if !ok {
		out := filepath.Join(os.Getenv("SANDBOXD_PROGS"), name)
		if os.Getenv("SANDBOXD_PROGS") == "" {
			out = filepath.Join(t.TempDir(), name)
			if b, err := exec.Command("gcc", "-O1", "-Wall", "-o", out, "../testdata/progs/"+name+".c").CombinedOutput(); err != nil {
				progsM.Unlock()
				t.Fatalf("compile %s.c: %v\n%s", name, err, b)
			}
		}
		var err error
		if bin, err = os.ReadFile(out); err != nil {
			progsM.Unlock()
			t.Fatal(err)
		}
		progs[name] = bin
	}
	progsM.Unlock()
	for _, b := range boxes {
		s.ok(obj{"command": "write_file", "box": b, "path": name, "content_base64": base64.StdEncoding.EncodeToString(bin), "mode": 0o755})
	}
}

// program is a run_group program with the usual limits.
func program(box int, argv ...string) obj {
	return obj{"box": box, "argv": argv, "cpu_time_limit": 2.0, "processes_limit": 4, "real_time_limit": 20.0}
}

func pipe(fromProgram, fromFD, toProgram, toFD int) obj {
	return obj{"from": obj{"program": fromProgram, "fd": fromFD}, "to": obj{"program": toProgram, "fd": toFD}}
}

// bothWays joins program 0's stdout to program 1's stdin and back.
var bothWays = []obj{pipe(0, 1, 1, 0), pipe(1, 1, 0, 0)}

// interactive opens two boxes with the game in each and runs interactor
// (secret 777) against the solution in mode.
func interactive(t *testing.T, backend []string, mode string, solution obj, extra obj) (results []obj, order []any) {
	t.Helper()
	s := startServer(t, backend...)
	a := int(s.ok(obj{"command": "open_box"})["box"].(float64))
	b := int(s.ok(obj{"command": "open_box"})["box"].(float64))
	installProg(t, s, "guess", a, b)
	if solution == nil {
		solution = program(b, "./guess", "solution", mode)
	}
	req := obj{"command": "run_group", "programs": []obj{program(a, "./guess", "interactor", "777"), solution}, "pipes": bothWays}
	for k, v := range extra {
		req[k] = v
	}
	r := s.ok(req)
	for _, x := range r["results"].([]any) {
		results = append(results, x.(obj))
	}
	return results, r["exit_order"].([]any)
}

func wantRun(t *testing.T, what string, r obj, verdict string, exitCode any) {
	t.Helper()
	if r["limit_verdict"] != verdict || r["exit_code"] != exitCode {
		t.Errorf("%s: got %v %v, want %s %v (%v)", what, r["limit_verdict"], r["exit_code"], verdict, exitCode, r)
	}
}

func TestGroupGuessRight(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		rs, order := interactive(t, backend, "right", nil, nil)
		wantRun(t, "interactor", rs[0], "OK", 0.0)
		wantRun(t, "solution", rs[1], "OK", 0.0)
		if len(order) != 2 {
			t.Errorf("exit_order %v, want both programs", order)
		}
	})
}

func TestGroupGuessWrong(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		rs, order := interactive(t, backend, "wrong", nil, nil)
		wantRun(t, "interactor", rs[0], "OK", 1.0)
		wantRun(t, "solution", rs[1], "Signaled", -13.0) // SIGPIPE
		if len(order) != 2 || order[0] != 0.0 {
			t.Errorf("exit_order %v, want the interactor first", order)
		}
	})
}

func TestGroupSolutionOverCPULimit(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		rs, _ := interactive(t, backend, "", obj{"box": 2, "argv": []string{"./guess", "solution", "cpu"}, "cpu_time_limit": 0.3, "processes_limit": 2}, nil)
		wantRun(t, "solution", rs[1], "CPUTimeLimitExceeded", nil)
		if cpu := rs[1]["cpu_time"].(float64); cpu < 0.3 {
			t.Errorf("solution cpu_time %g, want at least its limit 0.3", cpu)
		}
		wantRun(t, "interactor", rs[0], "OK", 1.0) // its input ended without an answer
	})
}

func TestGroupSolutionOverMemoryLimit(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		rs, _ := interactive(t, backend, "", obj{"box": 2, "argv": []string{"./guess", "solution", "memory"}, "cpu_time_limit": 10.0, "processes_limit": 2, "memory_limit": 64 << 20}, nil)
		wantRun(t, "solution", rs[1], "MemoryLimitExceeded", nil)
		wantRun(t, "interactor", rs[0], "OK", 1.0)
	})
}

func TestGroupIdlenessEndsADeadlock(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		rs, _ := interactive(t, backend, "noflush", nil, obj{"idleness_time_limit": 0.5})
		for i, r := range rs {
			wantRun(t, []string{"interactor", "solution"}[i], r, "IdlenessTimeLimitExceeded", nil)
			if real := r["real_time"].(float64); real < 0.5 || real > 0.5+loadSlack && !functionalOnly {
				t.Errorf("program %d: real_time %g, want the group's idleness limit 0.5 s, and little more", i, real)
			}
		}
	})
}

func TestGroupInteractorCrashes(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		installProg(t, s, "guess", 0)
		b := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		installProg(t, s, "guess", b)
		r := s.ok(obj{"command": "run_group", "programs": []obj{program(0, "./guess", "interactor", "777", "crash"), program(b, "./guess", "solution", "right")}, "pipes": bothWays})
		rs := r["results"].([]any)
		wantRun(t, "interactor", rs[0].(obj), "Signaled", -6.0) // SIGABRT
		// The solution writes first: it dies of SIGPIPE, or it reads the end
		// of its input if it wrote before the interactor was gone.
		if sol := rs[1].(obj); sol["exit_code"] != -13.0 && sol["exit_code"] != 3.0 {
			t.Errorf("solution: got %v, want SIGPIPE or exit 3", sol)
		}
	})
}

func TestGroupBadGroups(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		b := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		for _, c := range []struct {
			name    string
			req     obj
			code    string
			message string
		}{
			{"two programs in one box", obj{"programs": []obj{program(0, "true"), program(0, "true")}}, "invalid_argument", "both in box 0"},
			{"a pipe to no program", obj{"programs": []obj{program(0, "true"), program(b, "true")}, "pipes": []obj{pipe(0, 1, 2, 0)}}, "invalid_argument", "no program 2"},
			{"an fd piped twice", obj{"programs": []obj{program(0, "true"), program(b, "true")}, "pipes": []obj{pipe(0, 1, 1, 0), pipe(0, 1, 1, 3)}}, "invalid_argument", "fd 1 of program 0 is piped twice"},
			{"an fd piped and opened", obj{"programs": []obj{program(0, "true"), obj{"box": b, "argv": []string{"true"}, "stdin": "in", "cpu_time_limit": 1, "processes_limit": 1}}, "pipes": []obj{pipe(0, 1, 1, 0)}}, "invalid_argument", "piped and also opened"},
			{"fd 10", obj{"programs": []obj{program(0, "true"), program(b, "true")}, "pipes": []obj{pipe(0, 10, 1, 0)}}, "invalid_argument", "fd 10 cannot be piped"},
			{"a box that is not open", obj{"programs": []obj{program(0, "true"), program(b+5, "true")}, "pipes": []obj{pipe(0, 1, 1, 0)}}, "no_such_box", "programs[1]"},
			{"no cpu limit", obj{"programs": []obj{program(0, "true"), {"box": b, "argv": []string{"true"}, "processes_limit": 1}}}, "missing_limit", "programs[1]: cpu_time_limit"},
			{"a program that cannot be started", obj{"programs": []obj{program(0, "sleep", "10"), program(b, "./nope")}}, "exec_failed", "programs[1]"},
			{"a command in a program", obj{"programs": []obj{{"command": "run", "box": b, "argv": []string{"true"}, "cpu_time_limit": 1, "processes_limit": 1}}}, "unknown_field", "command"},
		} {
			req := obj{"command": "run_group"}
			for k, v := range c.req {
				req[k] = v
			}
			start := time.Now()
			r := s.call(req)
			e, _ := r["error"].(obj)
			if e == nil || e["code"] != c.code || !strings.Contains(e["message"].(string), c.message) {
				t.Errorf("%s: got %v, want error %s with %q", c.name, r, c.code, c.message)
			}
			// Not once the other programs end: one sleeps 10 s.
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("%s: the error came after %v", c.name, took)
			}
		}
		// The server goes on, and the boxes are sound.
		s.ok(run("true"))
	})
}

func TestGroupsThatShareBoxesInAnotherOrder(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		a := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		b := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		echo := func(box int) obj { return program(box, "sh", "-c", "echo hi") }
		read := func(box int) obj { return program(box, "sh", "-c", "read x; test $x = hi") }
		for i, boxes := range [][2]int{{a, b}, {b, a}, {a, b}, {b, a}} {
			s.send(mustJSON(obj{"command": "run_group", "id": i, "programs": []obj{echo(boxes[0]), read(boxes[1])}, "pipes": []obj{pipe(0, 1, 1, 0)}}))
			s.send(mustJSON(obj{"command": "run", "id": 10 + i, "box": boxes[1], "argv": []string{"true"}, "cpu_time_limit": 1, "processes_limit": 1}))
		}
		for range 8 {
			r := s.recv()
			if r["error"] != nil {
				t.Fatalf("reply %v", r)
			}
			if rs, ok := r["results"].([]any); ok {
				wantRun(t, "reader", rs[1].(obj), "OK", 0.0)
			}
		}
	})
}

func TestGroupEndedByCloseBox(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		a := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		b := int(s.ok(obj{"command": "open_box"})["box"].(float64))
		s.send(mustJSON(obj{"command": "run_group", "id": 1, "programs": []obj{program(a, "sleep", "10"), program(b, "sleep", "10")}}))
		s.send(mustJSON(obj{"command": "close_box", "id": 2, "box": b}))
		got := map[any]obj{}
		for range 2 {
			r := s.recv()
			got[r["id"]] = r
		}
		if e, _ := got[1.0]["error"].(obj); e == nil || e["code"] != "box_closed" {
			t.Errorf("run_group: got %v, want error box_closed", got[1.0])
		}
		if got[2.0]["error"] != nil {
			t.Errorf("close_box: %v", got[2.0])
		}
		s.ok(obj{"command": "run", "box": a, "argv": []string{"true"}, "cpu_time_limit": 1, "processes_limit": 1})
	})
}

// openBoxes opens n boxes and returns their ids.
func openBoxes(s *server, n int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = int(s.ok(obj{"command": "open_box"})["box"].(float64))
	}
	return ids
}

func TestGroupPipeline(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		b := openBoxes(s, 3)
		installProg(t, s, "square", b...)
		n := "100000"
		if functionalOnly {
			n = "2000" // an emulated machine does 50 times less in the same CPU time
		}
		r := s.ok(obj{"command": "run_group",
			"programs": []obj{program(b[0], "./square", "gen", n), program(b[1], "./square", "sol"), program(b[2], "./square", "check", n)},
			"pipes":    []obj{pipe(0, 1, 1, 0), pipe(1, 1, 2, 0)}})
		for i, x := range r["results"].([]any) {
			wantRun(t, []string{"gen", "sol", "check"}[i], x.(obj), "OK", 0.0)
		}
		if order := r["exit_order"].([]any); len(order) != 3 || order[0] != 0.0 {
			t.Errorf("exit_order %v, want gen first", order)
		}
	})
}

func TestGroupManagerWithTwoSolutionsOnFDs3To6(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		b := openBoxes(s, 3)
		installProg(t, s, "square", b...)
		n := "1000"
		if functionalOnly {
			n = "50"
		}
		r := s.ok(obj{"command": "run_group",
			"programs": []obj{program(b[0], "./square", "manager", n), program(b[1], "./square", "sol"), program(b[2], "./square", "sol")},
			"pipes":    []obj{pipe(0, 3, 1, 0), pipe(1, 1, 0, 4), pipe(0, 5, 2, 0), pipe(2, 1, 0, 6)}})
		for i, x := range r["results"].([]any) {
			wantRun(t, []string{"manager", "solution 1", "solution 2"}[i], x.(obj), "OK", 0.0)
		}
	})
}

func TestGroupPipeHoldsAMebibyte(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		b := openBoxes(s, 1)[0]
		// The writer ends without waiting for its reader, which reads only
		// after a second: the pipe holds all it wrote.
		r := s.ok(obj{"command": "run_group",
			"programs": []obj{program(0, "head", "-c", "1048576", "/dev/zero"), program(b, "sh", "-c", "sleep 1; test $(wc -c) = 1048576")},
			"pipes":    []obj{pipe(0, 1, 1, 0)}})
		rs := r["results"].([]any)
		wantRun(t, "writer", rs[0].(obj), "OK", 0.0)
		wantRun(t, "reader", rs[1].(obj), "OK", 0.0)
		if real := rs[0].(obj)["real_time"].(float64); real >= 0.9 {
			t.Errorf("the writer took %g s: it waited for its reader", real)
		}
		if order := r["exit_order"].([]any); order[0] != 0.0 {
			t.Errorf("exit_order %v, want the writer first", order)
		}
	})
}

// A program of a group starts with its stdio and the fds its pipes name,
// nothing else: none of the sandbox's (under isolate, none of isolate's:
// its meta file, its lock, its pipes), and not the fds left between them.
func TestGroupProgramsGetOnlyTheirDescriptors(t *testing.T) {
	backends(t, func(t *testing.T, backend []string) {
		s := startServer(t, backend...)
		b := openBoxes(s, 1)[0]
		s.installProbe(0)
		lister := obj{"box": 0, "argv": []string{"./probe", "fds"}, "stdout": "fds.txt", "cpu_time_limit": 2.0, "processes_limit": 4}
		r := s.ok(obj{"command": "run_group",
			"programs": []obj{lister, program(b, "sh", "-c", "cat >/dev/null")},
			"pipes":    []obj{pipe(0, 5, 1, 0), pipe(1, 1, 0, 7)}})
		rs := r["results"].([]any)
		wantRun(t, "lister", rs[0].(obj), "OK", 0.0)
		wantRun(t, "reader", rs[1].(obj), "OK", 0.0)
		var fds []string
		for _, line := range strings.Split(strings.TrimSpace(s.ok(obj{"command": "read_file", "path": "fds.txt"})["content"].(string)), "\n") {
			fds = append(fds, strings.Fields(line)[0])
		}
		if want := []string{"0", "1", "2", "5", "7"}; strings.Join(fds, " ") != strings.Join(want, " ") {
			t.Errorf("the program starts with descriptors %q, want %q only", fds, want)
		}
	})
}
