package tests

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Golden protocol sessions: testdata/sessions/*.jsonl hold request lines
// ("> ") each followed by the reply sandboxd gave ("< "). They double as the
// examples of PROTOCOL.md. The test replays every request against a fresh
// sandboxd and compares each reply with the recorded one, as a judge would
// rely on it on any machine: every field exactly (verdicts, exit codes,
// errors, file contents), but
//   - the metrics, which must be there and not negative, and be near the
//     limit the run hit, the one figure the session fixes: a time from the
//     limit to loadSlack past it, memory within 10 % below memory_limit;
//   - the host path of the state directory, written as $STATE;
//   - the fields of stats that tell of the host or the moment (hostFields),
//     which must be there with the type recorded.
//
// Nothing else may depend on the host: a session that printed a box's uid
// (--uid-base, SANDBOXD_TEST_UID_BASE) would record its digits in a file's
// content and size, which no substitution in the reply can undo.
//
// Regenerate after a deliberate change with: go test ./tests -run Golden -update

var update = flag.Bool("update", false, "rewrite the golden sessions with the replies of this sandboxd")

// metrics are the run reply's fields that vary from run to run.
var metrics = map[string]bool{"real_time": true, "cpu_time": true, "idleness_time": true, "memory": true}

// limitHit names, for each limit verdict, the metric that the limit fixes
// and the request field that holds it.
var limitHit = map[string]struct{ metric, limit string }{
	"CPUTimeLimitExceeded":      {"cpu_time", "cpu_time_limit"},
	"RealTimeLimitExceeded":     {"real_time", "real_time_limit"},
	"IdlenessTimeLimitExceeded": {"idleness_time", "idleness_time_limit"},
	"MemoryLimitExceeded":       {"memory", "memory_limit"},
}

// hostFields are the fields of stats' reply that differ from host to host
// and run to run: its uptime, the --parallel default (the CPUs), its cgroups.
var hostFields = map[string]bool{"uptime": true, "parallel": true, "cgroup": true}

// checkMetric tells what is wrong with a metric of a run reply, if anything.
// The sessions' programs are single-threaded: CPU time grows at most as fast
// as wall time. An emulated machine (functionalOnly) keeps no time bound
// above a limit.
func checkMetric(key string, got any, verdict string, req map[string]any) string {
	v, ok := got.(float64)
	if !ok || v < 0 {
		return fmt.Sprintf("%s: got %v, want a number, not negative", key, got)
	}
	hit, ok := limitHit[verdict]
	if !ok || hit.metric != key {
		return ""
	}
	limit, ok := req[hit.limit].(float64)
	if !ok {
		return fmt.Sprintf("%s without %s in the request", verdict, hit.limit)
	}
	lo, hi := limit, limit+loadSlack
	switch key {
	case "idleness_time":
		lo -= cpuTick
	case "memory":
		lo, hi = 0.9*limit, limit
	}
	if functionalOnly && key != "memory" {
		hi = math.Inf(1)
	}
	if v < lo || v > hi {
		f := "%.4f" // seconds
		if key == "memory" {
			f = "%.0f" // bytes
		}
		return fmt.Sprintf("%s: got "+f+", want between "+f+" and "+f+" (%s %v was hit)", key, v, lo, hi, hit.limit, limit)
	}
	return ""
}

func TestGoldenSessions(t *testing.T) {
	files, err := filepath.Glob("../testdata/sessions/*.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden sessions: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".jsonl"), func(t *testing.T) {
			replaySession(t, file)
		})
	}
}

func replaySession(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t)
	var out strings.Builder
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if !strings.HasPrefix(line, "> ") {
			if !strings.HasPrefix(line, "< ") {
				out.WriteString(line + "\n") // comments and blank lines
			}
			continue
		}
		req := strings.TrimPrefix(line, "> ")
		s.send(req)
		raw, err := s.out.ReadString('\n')
		if err != nil {
			t.Fatalf("%s:%d: no reply: %v (stderr: %s)", file, i+1, err, s.stderr.String())
		}
		got := strings.ReplaceAll(strings.TrimSuffix(raw, "\n"), s.stateDir, "$STATE")
		out.WriteString(line + "\n< " + got + "\n")
		if *update {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "< ") {
			t.Fatalf("%s:%d: request without a recorded reply", file, i+1)
		}
		want := strings.TrimPrefix(lines[i+1], "< ")
		if diff := compareReplies(req, got, want); diff != "" {
			t.Errorf("%s:%d: %s\n  request: %s\n  got:  %s\n  want: %s", file, i+1, diff, req, got, want)
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// compareReplies compares a reply with the recorded one.
func compareReplies(reqLine, gotLine, wantLine string) string {
	var req, got, want map[string]any
	json.Unmarshal([]byte(reqLine), &req) // nil for the requests that are not JSON
	if err := json.Unmarshal([]byte(gotLine), &got); err != nil {
		return "reply is not a JSON object"
	}
	if err := json.Unmarshal([]byte(wantLine), &want); err != nil {
		return "recorded reply is not a JSON object"
	}
	return compareReply(req, got, want)
}

// compareReply compares a reply with the recorded one; a run_group's
// results are compared each as a run's reply, with its program's request.
func compareReply(req, got, want map[string]any) string {
	if len(got) != len(want) {
		return fmt.Sprintf("fields differ: got %v, want %v", keys(got), keys(want))
	}
	verdict, _ := want["limit_verdict"].(string)
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return fmt.Sprintf("missing field %q", k)
		}
		if gs, ws, ok := groupResults(g, w); ok && k == "results" {
			programs, _ := req["programs"].([]any)
			for i := range ws {
				var p map[string]any
				if i < len(programs) {
					p, _ = programs[i].(map[string]any)
				}
				if diff := compareReply(p, gs[i], ws[i]); diff != "" {
					return fmt.Sprintf("results[%d]: %s", i, diff)
				}
			}
			continue
		}
		if _, stats := want["runs_running"]; stats && hostFields[k] {
			if reflect.TypeOf(g) != reflect.TypeOf(w) {
				return fmt.Sprintf("%s: got %v, want a value of the type of %v", k, g, w)
			}
			continue
		}
		if metrics[k] && verdict != "" {
			if diff := checkMetric(k, g, verdict, req); diff != "" {
				return diff
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("%s: got %v, want %v", k, g, w)
		}
	}
	return ""
}

// groupResults gives got and want as lists of the same number of replies.
func groupResults(got, want any) (gs, ws []map[string]any, ok bool) {
	g, _ := got.([]any)
	w, _ := want.([]any)
	if len(g) != len(w) {
		return nil, nil, false
	}
	for i := range w {
		gm, gok := g[i].(map[string]any)
		wm, wok := w[i].(map[string]any)
		if !gok || !wok {
			return nil, nil, false
		}
		gs, ws = append(gs, gm), append(ws, wm)
	}
	return gs, ws, true
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
