package protocol

import (
	"io"
	"strings"
	"testing"
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

func TestValidID(t *testing.T) {
	for raw, valid := range map[string]bool{`"a"`: true, `7`: true, `-3`: true, ``: true, `1.5`: false, `true`: false, `{}`: false, `[1]`: false} {
		if validID([]byte(raw)) != valid {
			t.Errorf("validID(%s) = %v", raw, !valid)
		}
	}
}
