package executor

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"sandboxd/spec"
)

// groupPipeSize is the buffer a pipe of a group gets, at least, when the
// host's pipe-max-size allows it: a program's burst of output does not wait
// for its reader.
const groupPipeSize = 1 << 20

// GroupPipes makes the pipes of a group on the host. ends[i] maps the fds of
// program i that pipes name to the pipe ends it gets; the caller closes them
// all (CloseGroupPipes) once every program holds its own.
func GroupPipes(pipes []spec.Pipe, programs int) (ends []map[int]*os.File, err error) {
	ends = make([]map[int]*os.File, programs)
	for i := range ends {
		ends[i] = map[int]*os.File{}
	}
	size := groupPipeSize
	if b, err := os.ReadFile("/proc/sys/fs/pipe-max-size"); err == nil {
		if max, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && max < size {
			size = max
		}
	}
	for _, p := range pipes {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			CloseGroupPipes(ends)
			return nil, fmt.Errorf("make a pipe: %w", err)
		}
		if _, err := unix.FcntlInt(uintptr(fds[1]), unix.F_SETPIPE_SZ, size); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			CloseGroupPipes(ends)
			return nil, fmt.Errorf("set the size of a pipe to %d: %w", size, err)
		}
		ends[p.To.Program][p.To.FD] = os.NewFile(uintptr(fds[0]), "pipe")
		ends[p.From.Program][p.From.FD] = os.NewFile(uintptr(fds[1]), "pipe")
	}
	return ends, nil
}

// CloseGroupPipes closes the host's copies of a group's pipe ends.
func CloseGroupPipes(ends []map[int]*os.File) {
	for _, m := range ends {
		for fd, f := range m {
			f.Close()
			delete(m, fd)
		}
	}
}
