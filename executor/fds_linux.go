package executor

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// CloseInheritedFDs closes every descriptor above stderr that this process
// inherited from whoever started it: a judge's shell may leave the host's
// root directory or its terminal open, and a descriptor without
// close-on-exec would pass on to every process sandboxd starts, box inits
// and so programs included. Call it first thing in main, before anything
// opens a descriptor that is not close-on-exec.
func CloseInheritedFDs() error {
	return CloseInheritedFDsFrom(3)
}

// CloseInheritedFDsFrom closes every inherited descriptor from `from` up. Right
// after execve, the inherited ones are exactly those without close-on-exec
// (execve closed the others), while everything the Go runtime opens before
// main (its cgroup files, its poller) has close-on-exec and stays.
func CloseInheritedFDsFrom(from int) error {
	dir, err := os.Open("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list inherited descriptors: %w", err)
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("list inherited descriptors: %w", err)
	}
	for _, name := range names {
		fd, err := strconv.Atoi(name)
		if err != nil || fd < from || fd == int(dir.Fd()) {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			unix.Close(fd) // Linux frees the descriptor whatever close says
		}
	}
	return nil
}
