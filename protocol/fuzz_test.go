package protocol

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzMaxLine is small, so that inputs reach past it.
const fuzzMaxLine = 1 << 10

// maxFuzzMessage bounds an error message: each quotes at most a short
// prefix of what it was sent (spec.Quote), whatever the input.
const maxFuzzMessage = 512

// fuzzHang is far longer than any input takes (runs last 100 µs).
const fuzzHang = 5 * time.Second

// FuzzServe feeds its input to Server.Serve as the request stream and checks
// the framing: exactly one reply line per request line (blank lines get
// none, a line over the limit gets line_too_long), each valid UTF-8 with no
// lone surrogate and a JSON object, an error with a code and a short
// message; and no panic.
func FuzzServe(f *testing.F) {
	sessions, err := filepath.Glob("../testdata/sessions/*.jsonl")
	if err != nil || len(sessions) == 0 {
		f.Fatalf("no golden sessions to seed the corpus: %v", err)
	}
	for _, file := range sessions {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		var stream []byte
		for _, line := range strings.Split(string(data), "\n") {
			if req, ok := strings.CutPrefix(line, "> "); ok {
				f.Add([]byte(req))
				stream = append(stream, req+"\n"...)
			}
		}
		f.Add(stream)
	}
	for _, seed := range []string{
		"", "\n", " \t\r\n\r\n", "\u00a0\n", "null", "[]", "{}",
		"{\"command\":\"version\",\"id\":\"\xff\"}\n",
		`{"command":"version","id":"\ud800"}` + "\r\n" + `{"command":"version","id":"\ud83d\ude00"}`,
		`{"command":"read_file","path_base64":"Yf9i"}`,
		// A run in flight, and one queued behind it, cancelled.
		"{\"id\":1," + runTrue + "}\n{\"id\":1," + runTrue + "}\n" + `{"command":"cancel","id":2,"target":1}`,
		`{"command":"list_files","path":"` + strings.Repeat("a/", 400) + `"}`,
		strings.Repeat(" ", fuzzMaxLine) + "\n" + strings.Repeat(" ", fuzzMaxLine+1) + "\n" + strings.Repeat("x", fuzzMaxLine+1),
		strings.Repeat(" ", fuzzMaxLine+1), // a last line without "\n", over the limit
	} {
		f.Add([]byte(seed))
	}
	spaces := f.TempDir()
	// A name that is not UTF-8, for list_files' name_base64 and path_base64.
	if err := os.MkdirAll(filepath.Join(spaces, "0", "a\xffb"), 0o755); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		// Runs last a moment, so that close_box and reset_box behind them end them.
		exec := newFakeExecutor()
		exec.spaces, exec.runDelay = spaces, 100*time.Microsecond
		s := &Server{Exec: exec, Parallel: 2, MaxLine: fuzzMaxLine, Version: "fuzz"}
		var out bytes.Buffer
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background(), bytes.NewReader(in), &out) }()
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(fuzzHang):
			// A hang fails the input, so that the fuzzer saves it instead of
			// stalling until -fuzztime runs out.
			buf := make([]byte, 1<<20)
			t.Fatalf("Serve has not returned after %v; goroutines:\n%s", fuzzHang, buf[:runtime.Stack(buf, true)])
		}
		replies := bytes.SplitAfter(out.Bytes(), []byte("\n"))
		if last := replies[len(replies)-1]; len(last) != 0 {
			t.Fatalf("output does not end with a whole line: %q", last)
		}
		replies = replies[:len(replies)-1]
		if want := requestLines(in, fuzzMaxLine); len(replies) != want {
			t.Fatalf("%d reply lines to %d request lines:\n%s", len(replies), want, out.Bytes())
		}
		ids := requestIDs(in)
		for _, line := range replies {
			checkReply(t, line)
			var r struct{ ID json.RawMessage }
			json.Unmarshal(line, &r)
			if len(r.ID) == 0 {
				continue
			}
			if ids[string(r.ID)] == 0 {
				t.Fatalf("reply with an id no request had, or one more than requests had: %s", line)
			}
			ids[string(r.ID)]--
		}
	})
}

// requestIDs counts the ids of the request lines of in, as compact JSON: a
// reply may carry only an id that a request carried, once per request.
func requestIDs(in []byte) map[string]int {
	ids := map[string]int{}
	for _, line := range bytes.Split(in, []byte("\n")) {
		var req map[string]json.RawMessage
		if json.Unmarshal(line, &req) != nil {
			continue
		}
		for k, id := range req {
			var compact bytes.Buffer
			if strings.EqualFold(k, "id") && json.Compact(&compact, id) == nil {
				ids[compact.String()]++
			}
		}
	}
	return ids
}

// requestLines counts the lines of in that must get a reply: every line
// but blank ones (JSON white space only), and a line longer than max
// whatever it holds. The bytes after the last "\n" are a line too.
func requestLines(in []byte, max int) int {
	lines := bytes.Split(in, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	n := 0
	for _, line := range lines {
		if len(line) > max || len(bytes.Trim(line, " \t\r")) > 0 {
			n++
		}
	}
	return n
}

func checkReply(t *testing.T, line []byte) {
	t.Helper()
	if !utf8.Valid(line) {
		t.Fatalf("reply is not valid UTF-8: %q", line)
	}
	if err := checkText(line); err != nil {
		t.Fatalf("reply is not valid Unicode (%v): %s", err, line)
	}
	var reply map[string]json.RawMessage
	if err := json.Unmarshal(line, &reply); err != nil || reply == nil {
		t.Fatalf("reply is not a JSON object (%v): %s", err, line)
	}
	raw, failed := reply["error"]
	if !failed {
		return
	}
	var e struct{ Code, Message string }
	if err := json.Unmarshal(raw, &e); err != nil || e.Code == "" || e.Message == "" {
		t.Fatalf("error without a code or a message: %s", line)
	}
	if len(e.Message) > maxFuzzMessage {
		t.Fatalf("error message of %d bytes: %s", len(e.Message), line)
	}
}
