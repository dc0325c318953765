package tests

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// The wire itself: every reply line is valid UTF-8 JSON whatever a judge
// sends and whatever names a program gives its files; error messages stay
// short.

// validReply fails the test unless line is one JSON object of valid
// Unicode: UTF-8, and no \u escape of a lone surrogate, which strict JSON
// parsers (serde_json, nlohmann::json) refuse.
func validReply(t *testing.T, line []byte) obj {
	t.Helper()
	if !utf8.Valid(line) {
		t.Fatalf("reply is not valid UTF-8: %q", line)
	}
	if loneSurrogate(line) {
		t.Fatalf("reply holds a lone surrogate: %s", line)
	}
	var m obj
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("reply is not a JSON object: %q", line)
	}
	return m
}

// loneSurrogate tells whether JSON text holds a \u escape of a surrogate
// that is not half of a pair.
func loneSurrogate(text []byte) bool {
	escape := func(i int) (rune, bool) { // the \uXXXX at text[i:], if any
		if i+6 > len(text) || text[i] != '\\' || text[i+1] != 'u' {
			return 0, false
		}
		n, err := strconv.ParseUint(string(text[i+2:i+6]), 16, 16)
		return rune(n), err == nil
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '\\' {
			continue
		}
		r, ok := escape(i)
		switch {
		case !ok:
			i++ // another escape: skip its character
		case utf16.IsSurrogate(r) && r < 0xdc00:
			if low, ok := escape(i + 6); !ok || low < 0xdc00 || low > 0xdfff {
				return true
			}
			i += 11
		case utf16.IsSurrogate(r):
			return true
		default:
			i += 5
		}
	}
	return false
}

// callRaw sends one raw line and checks that its reply is valid.
func (s *server) callRaw(line string) obj {
	s.t.Helper()
	s.send(line)
	return validReply(s.t, s.recvLine())
}

func TestRepliesAreValidUnicode(t *testing.T) {
	s := startServer(t)
	for _, c := range []struct {
		line, code string
		echoed     any // the id the reply carries; nil: none
	}{
		// An id that is not valid Unicode cannot be echoed as it came.
		{"{\"command\":\"version\",\"id\":\"\xff\xfe\"}", "invalid_argument", nil},
		{`{"command":"version","id":"\ud800"}`, "invalid_argument", nil},
		{`{"command":"version","id":"x\udc00y"}`, "invalid_argument", nil},
		// Text that is not Unicode elsewhere would silently become U+FFFD:
		// a file of another name, a content that is not what was sent.
		{"{\"command\":\"write_file\",\"id\":1,\"path\":\"a\xffb\",\"content\":\"x\"}", "bad_json", 1.0},
		{"{\"command\":\"write_file\",\"id\":2,\"path\":\"ok\",\"content\":\"\xc3\"}", "bad_json", 2.0},
		{`{"command":"write_file","id":3,"path":"a\udcffb","content":"x"}`, "invalid_argument", 3.0},
		{"{\"command\":\"fly\xff\",\"id\":\"\xce\xbb\"}", "bad_json", "λ"},
		{"\xff\xfe{", "bad_json", nil},
	} {
		r := s.callRaw(c.line)
		expectError(t, r, c.code)
		if r["id"] != c.echoed {
			t.Errorf("%q: reply id %v, want %v", c.line, r["id"], c.echoed)
		}
	}
	// Only JSON white space makes a line blank (no reply): a no-break space does not.
	s.send(" \t\r")
	s.send("\u00a0")
	expectError(t, s.callRaw(`{"command":"version","id":"after"}`), "bad_json")
	if r := validReply(t, s.recvLine()); r["id"] != "after" {
		t.Errorf("reply to the version request: %v", r)
	}
	// Nothing was written under a replaced name.
	if entries := s.ok(obj{"command": "list_files"})["entries"].([]any); len(entries) != 0 {
		t.Errorf("files written from requests that were refused: %v", entries)
	}
	// Valid surrogate pairs and U+FFFD itself are text like any other.
	r := s.callRaw(`{"command":"write_file","id":"\ud83d\ude00\ufffd","path":"\ud83d\ude00","content":"\ufffd"}`)
	if r["id"] != "😀\ufffd" || r["size"] != 3.0 {
		t.Errorf("a surrogate pair: %v", r)
	}
}

// A program may name its files with any bytes. list_files gives the exact
// bytes of a name that is not UTF-8 in name_base64, and every file command
// takes path_base64 instead of path, so the judge can name the file again.
func TestNamesThatAreNotUTF8(t *testing.T) {
	s := startServer(t)
	r := s.ok(with(run("sh", "-c", `d=$(printf 'd\377'); mkdir "$d" && printf inner > "$d/$(printf 'f\376')" && printf outer > "$(printf 'a\377b')" && printf plain > plain.txt`), "processes_limit", 8))
	expectVerdict(t, r, "OK", code(0))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

	entries := map[string]map[string]any{}
	for _, e := range s.ok(obj{"command": "list_files"})["entries"].([]any) {
		e := e.(map[string]any)
		entries[e["name"].(string)] = e
	}
	if e := entries["a\ufffdb"]; e == nil || e["name_base64"] != b64("a\xffb") || e["type"] != "file" || e["size"] != 5.0 {
		t.Fatalf("a\\377b is not listed with its bytes: %v", entries)
	}
	if e := entries["d\ufffd"]; e == nil || e["name_base64"] != b64("d\xff") || e["type"] != "dir" {
		t.Fatalf("d\\377 is not listed with its bytes: %v", entries)
	}
	if _, has := entries["plain.txt"]["name_base64"]; has {
		t.Errorf("a UTF-8 name carries name_base64: %v", entries["plain.txt"])
	}

	// The listed bytes name the file again: read it, list the directory.
	name := entries["a\ufffdb"]["name_base64"].(string)
	if r := s.ok(obj{"command": "read_file", "path_base64": name}); r["content"] != "outer" {
		t.Errorf("read_file by path_base64: %v", r)
	}
	dir := s.ok(obj{"command": "list_files", "path_base64": entries["d\ufffd"]["name_base64"]})["entries"].([]any)
	if len(dir) != 1 || dir[0].(map[string]any)["name_base64"] != b64("f\xfe") {
		t.Fatalf("list_files of d\\377 by path_base64: %v", dir)
	}
	inner := s.ok(obj{"command": "read_file", "path_base64": b64("d\xff/f\xfe"), "encoding": "base64"})
	if inner["content"] != b64("inner") {
		t.Errorf("read_file d\\377/f\\376: %v", inner)
	}
	// A file the judge writes under such a name is the one a program sees.
	s.ok(obj{"command": "write_file", "path_base64": b64("/space/w\xfd"), "content": "from the judge"})
	r = s.ok(with(run("sh", "-c", `cat "$(printf 'w\375')"`), "stdout", "seen.txt"))
	expectVerdict(t, r, "OK", code(0))
	if got := s.ok(obj{"command": "read_file", "path": "seen.txt"})["content"]; got != "from the judge" {
		t.Errorf("the program read %q from w\\375", got)
	}
	// Remove by the listed name; the program no longer finds them.
	s.ok(obj{"command": "remove_file", "path_base64": name})
	s.ok(obj{"command": "remove_file", "path_base64": entries["d\ufffd"]["name_base64"]})
	r = s.ok(with(run("sh", "-c", `test ! -e "$(printf 'a\377b')" && test ! -e "$(printf 'd\377')"`), "processes_limit", 8))
	expectVerdict(t, r, "OK", code(0))

	// path_base64 is checked as path is.
	expectError(t, s.call(obj{"command": "read_file", "path_base64": b64("../../etc/passwd")}), "invalid_argument")
	expectError(t, s.call(obj{"command": "read_file", "path_base64": "not base64!"}), "invalid_argument")
	expectError(t, s.call(obj{"command": "read_file", "path": "plain.txt", "path_base64": b64("plain.txt")}), "invalid_argument")
	expectError(t, s.call(obj{"command": "read_file", "path_base64": b64("x\x00y")}), "invalid_argument")
	// An error names a path that is not UTF-8 with escapes, in valid UTF-8.
	r = s.callRaw(mustJSON(obj{"command": "read_file", "path_base64": b64("gone\xff")}))
	expectError(t, r, "no_such_file")
	if msg := r["error"].(map[string]any)["message"].(string); !strings.Contains(msg, `gone\xff`) {
		t.Errorf("message does not show the name's bytes: %q", msg)
	}
}

// maxMessage bounds an error message (sandboxd repeats at most a short
// prefix of what it was sent).
const maxMessage = 512

func expectShortError(t *testing.T, r obj, code string) {
	t.Helper()
	expectError(t, r, code)
	if msg := r["error"].(map[string]any)["message"].(string); len(msg) > maxMessage {
		t.Errorf("error %s: message of %d bytes: %.200q…", code, len(msg), msg)
	}
}

// Bad paths are invalid_argument with a short message, however long.
func TestLongPathsAreInvalidArgument(t *testing.T) {
	s := startServer(t)
	long := strings.Repeat("a/", 40000) + "f"
	component := strings.Repeat("x", 300)
	for _, path := range []string{long, component, component + "/f"} {
		for _, req := range []obj{
			{"command": "read_file", "path": path},
			{"command": "write_file", "path": path, "content": "x"},
			{"command": "list_files", "path": path},
			{"command": "remove_file", "path": path},
			{"command": "read_file", "path_base64": base64.StdEncoding.EncodeToString([]byte(path))},
		} {
			expectShortError(t, s.callRaw(mustJSON(req)), "invalid_argument")
		}
	}
	// Nothing was created on the way.
	if entries := s.ok(obj{"command": "list_files"})["entries"].([]any); len(entries) != 0 {
		t.Errorf("a refused write left %v", entries)
	}
}

// Whatever part of a request a message names, it repeats a bounded prefix.
func TestErrorMessagesAreShort(t *testing.T) {
	s := startServer(t)
	a, n := strings.Repeat("a", 5000), strings.Repeat("9", 5000)
	limits := `"cpu_time_limit":1,"processes_limit":1`
	for _, c := range []struct{ line, code string }{
		{`{"command":"` + a + `"}`, "unknown_command"},
		{`{"command":"version","` + a + `":1}`, "unknown_field"},
		{`{"command":"run","box":` + n + `}`, "invalid_argument"},
		{`{"command":"run","argv":["x"],"cpu_time_limit":1,"processes_limit":-` + n + `}`, "invalid_argument"},
		{`{"command":"run","argv":["x"],"env":{"` + a + `":1},` + limits + `}`, "invalid_argument"},
		{`{"command":"run","argv":["x"],"env":{"` + a + `=":"1"},` + limits + `}`, "invalid_argument"},
		{`{"command":"run","argv":["` + a + `"],` + limits + `}`, "invalid_argument"},
		{`{"command":"run","argv":["/bin/true"],"stdout":"` + a + `",` + limits + `}`, "invalid_argument"},
		{`{"command":"run","argv":["` + a[:300] + `"],` + limits + `}`, "exec_failed"},
		{`{"command":"run","argv":["/` + a[:300] + `"],` + limits + `}`, "exec_failed"},
		{`{"command":"run","argv":["/bin/true"],"stdout":"` + a[:300] + `",` + limits + `}`, "exec_failed"},
		{`{"command":"run","argv":["x"],"env":{"PATH":"` + a + `"},` + limits + `}`, "exec_failed"},
		{`{"command":"open_box","dirs":["/` + a + `"]}`, "invalid_argument"},
		{`{"command":"open_box","dirs":["/` + a + `/.."]}`, "invalid_argument"},
		{`{"command":"remove_runtime","name":"` + a + `"}`, "invalid_argument"},
		{`{"command":"read_file","path":"` + a + `"}`, "invalid_argument"},
	} {
		expectShortError(t, s.callRaw(c.line), c.code)
	}
	expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
}

// sandboxd reads its requests from whatever stdin a judge gives it: a pipe,
// whose read end the judge may share and finds as blocking as it was (sandboxd
// reads the pipe through a file description of its own, in Go's poller); a
// file of requests; a socket. It answers, and ends at the end of input.
func TestRequestsOnAnyKindOfStdin(t *testing.T) {
	request := []byte(`{"command":"run","id":1,"argv":["/bin/true"],"cpu_time_limit":1,"processes_limit":1}` + "\n")
	// serve starts sandboxd on stdin, whose other end is fed by feed, and
	// checks its one reply; between it and the end of input, check runs.
	serve := func(t *testing.T, stdin *os.File, feed func([]byte), end func(), check func()) {
		s := newServer(t, t.TempDir())
		s.cmd.Stdin = stdin
		s.cmd.Stderr = &s.stderr
		stdout, err := s.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer s.freeUIDs()
		stdin.Close()
		feed(request)
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err != nil {
			s.cmd.Process.Kill()
			s.cmd.Wait()
			t.Fatalf("no reply: %v; stderr: %s", err, s.stderr.String())
		}
		if r := validReply(t, line); r["limit_verdict"] != "OK" || r["id"] != 1.0 {
			t.Errorf("reply %s", line)
		}
		check()
		end()
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sandboxd at the end of input: %v; stderr: %s", err, s.stderr.String())
			}
		case <-time.After(60 * time.Second):
			s.cmd.Process.Kill()
			<-done
			t.Errorf("sandboxd did not exit within 60 s of the end of input")
		}
	}
	t.Run("a pipe the judge shares", func(t *testing.T) {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil { // blocking, as a judge's
			t.Fatal(err)
		}
		judgeCopy, err := unix.Dup(p[0])
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(judgeCopy)
		w := os.NewFile(uintptr(p[1]), "requests")
		serve(t, os.NewFile(uintptr(p[0]), "stdin"), func(b []byte) { w.Write(b) }, func() { w.Close() }, func() {
			if flags, err := unix.FcntlInt(uintptr(judgeCopy), unix.F_GETFL, 0); err != nil || flags&unix.O_NONBLOCK != 0 {
				t.Errorf("the judge's read end of sandboxd's stdin: flags %#x, %v; want it blocking, as it was", flags, err)
			}
		})
	})
	t.Run("a file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "requests")
		if err := os.WriteFile(path, request, 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		serve(t, f, func([]byte) {}, func() {}, func() {})
	})
	t.Run("a socket", func(t *testing.T) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		judge := os.NewFile(uintptr(fds[1]), "judge")
		defer judge.Close()
		serve(t, os.NewFile(uintptr(fds[0]), "stdin"), func(b []byte) { judge.Write(b) }, func() { unix.Shutdown(fds[1], unix.SHUT_WR) }, func() {})
	})
}
