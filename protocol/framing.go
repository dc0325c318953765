package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxLine is the default bound on a request line, in bytes.
const DefaultMaxLine = 16 << 20

// errLineTooLong reports a line over the maximum; the line was skipped.
var errLineTooLong = errors.New("line too long")

// lineReader splits input into lines of at most max bytes. A longer line is
// read to its end and dropped, so the stream stays in step.
type lineReader struct {
	r   *bufio.Reader
	max int
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its "\n" (or "\r\n"). The slice is
// valid until the next call. At the end of input it returns io.EOF; a last
// line without "\n" is still returned first. A line's length is that of
// its bytes before the "\n".
func (l *lineReader) next() ([]byte, error) {
	l.buf = l.buf[:0]
	tooLong := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if !tooLong {
			if len(l.buf)+len(chunk) > l.max+1 { // +1: the newline itself
				tooLong = true
				l.buf = l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && (len(l.buf) > 0 || tooLong):
			// A final line without newline: return it now, EOF on the next call.
			tooLong = tooLong || len(l.buf) > l.max
		case err != nil:
			return nil, err
		}
		if tooLong {
			return nil, errLineTooLong
		}
		line := bytes.TrimSuffix(l.buf, []byte("\n"))
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
}
