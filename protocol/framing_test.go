package protocol

import (
	"io"
	"strings"
	"testing"

	"sandboxd/spec"
)

func TestLineReader(t *testing.T) {
	in := "short\r\n" + strings.Repeat("x", 100) + "\nnext\nlast without newline"
	lr := newLineReader(strings.NewReader(in), 50)
	want := []struct {
		line string
		err  error
	}{{"short", nil}, {"", errLineTooLong}, {"next", nil}, {"last without newline", nil}, {"", io.EOF}}
	for i, w := range want {
		line, err := lr.next()
		if err != w.err || (err == nil && string(line) != w.line) {
			t.Errorf("line %d: got %q, %v; want %q, %v", i, line, err, w.line, w.err)
		}
	}
}

// A last line without "\n" is bounded as every other line is.
func TestLineReaderBoundsTheLastLine(t *testing.T) {
	for in, tooLong := range map[string]bool{"12345\n12345": false, "12345\n123456": true, "123456\n": true, "12345\r\n": true} {
		lr := newLineReader(strings.NewReader(in), 5)
		var err error
		for err == nil {
			_, err = lr.next()
			if err == errLineTooLong {
				break
			}
		}
		if (err == errLineTooLong) != tooLong {
			t.Errorf("%q with lines of at most 5 bytes: got %v", in, err)
		}
	}
}

func TestValidID(t *testing.T) {
	for raw, valid := range map[string]bool{`"a"`: true, `7`: true, `-3`: true, ``: true, `1.5`: false, `true`: false, `{}`: false, `[1]`: false,
		"\"\xff\"": false, `"\ud800"`: false, `"\ud83d\ude00"`: true} {
		if validID([]byte(raw)) != valid {
			t.Errorf("validID(%s) = %v", raw, !valid)
		}
	}
}

func TestCheckText(t *testing.T) {
	for text, code := range map[string]spec.Code{
		`{"a":"\u00e9\ud83d\ude00\\ud800\n"}`: "", "{\"a\":\"\xc3\xa9\"}": "",
		"{\"a\":\"\xc3\"}": spec.CodeBadJSON, "\xff": spec.CodeBadJSON,
		`"\ud800"`: spec.CodeInvalidArgument, `"\udc00"`: spec.CodeInvalidArgument, `"\ud800\u0041"`: spec.CodeInvalidArgument,
		`"\uD83D\uDE00"`: "", `"\ud83d"`: spec.CodeInvalidArgument,
	} {
		err := checkText([]byte(text))
		if (code == "" && err != nil) || (code != "" && spec.CodeOf(err) != code) {
			t.Errorf("checkText(%q) = %v, want %q", text, err, code)
		}
	}
}

func TestDecodeArgsNamesMatchExactly(t *testing.T) {
	var args struct {
		envelope
		boxArg
		Path string `json:"path"`
	}
	if err := decodeArgs([]byte(`{"command":"x","id":1,"box":2,"path":"p"}`), &args); err != nil || args.Box != 2 || args.Path != "p" {
		t.Fatalf("exact names: %v, %+v", err, args)
	}
	for _, line := range []string{`{"command":"x","Path":"p"}`, `{"COMMAND":"x"}`, `{"command":"x","path":"p","pathh":1}`} {
		if err := decodeArgs([]byte(line), &args); spec.CodeOf(err) != spec.CodeUnknownField {
			t.Errorf("%s: %v, want unknown_field", line, err)
		}
	}
}
