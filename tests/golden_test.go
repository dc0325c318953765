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
// sandboxd and compares each reply with the recorded one: exactly, except
// the metrics, which must be within the tolerances below, and the host path
// of the state directory, written as $STATE.
//
// Regenerate after a deliberate change with: go test ./tests -run Golden -update

var update = flag.Bool("update", false, "rewrite the golden sessions with the replies of this sandboxd")

// Metric tolerances: time figures within 50 ms plus 20 %, memory within a
// factor of two plus 1 MiB (a shell's footprint varies with the host).
func metricClose(key string, got, want float64) bool {
	switch key {
	case "real_time", "cpu_time", "idleness_time":
		return math.Abs(got-want) <= 0.05+0.2*want
	case "memory":
		return got <= 2*want+(1<<20) && got >= want/2-(1<<20)
	}
	return got == want
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
		if diff := compareReplies(got, want); diff != "" {
			t.Errorf("%s:%d: %s\n  request: %s\n  got:  %s\n  want: %s", file, i+1, diff, req, got, want)
		}
	}
	if *update {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func compareReplies(gotLine, wantLine string) string {
	var got, want map[string]any
	if err := json.Unmarshal([]byte(gotLine), &got); err != nil {
		return "reply is not a JSON object"
	}
	if err := json.Unmarshal([]byte(wantLine), &want); err != nil {
		return "recorded reply is not a JSON object"
	}
	if len(got) != len(want) {
		return fmt.Sprintf("fields differ: got %v, want %v", keys(got), keys(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return fmt.Sprintf("missing field %q", k)
		}
		gn, gIsNum := g.(float64)
		wn, wIsNum := w.(float64)
		if gIsNum && wIsNum {
			if !metricClose(k, gn, wn) {
				return fmt.Sprintf("%s: got %v, want %v", k, gn, wn)
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			return fmt.Sprintf("%s: got %v, want %v", k, g, w)
		}
	}
	return ""
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

