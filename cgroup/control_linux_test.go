package cgroup

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// A control file kept open stays blocking and out of Go's poller, so that
// reading it is one system call (sysfs is kernfs, as cgroupfs is: pollable).
func TestControlFilesStayOutOfThePoller(t *testing.T) {
	const path = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s here: %v", path, err)
	}
	f, err := openControl(path, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Not through Fd(), which would make the descriptor blocking.
	conn, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var flags int
	if err := conn.Control(func(fd uintptr) { flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_NONBLOCK != 0 {
		t.Errorf("a control file was opened non-blocking (flags %#x): it is in Go's poller", flags)
	}
	if _, err := readIntAt(f); err != nil {
		t.Fatal(err)
	}
}
