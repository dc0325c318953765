package native

import (
	"errors"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mqOpen is mq_open(2): name without glibc's leading slash.
func mqOpen(name string, flags int) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return -1, err
	}
	fd, _, errno := unix.Syscall6(unix.SYS_MQ_OPEN, uintptr(unsafe.Pointer(p)), uintptr(flags), 0o600, 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// inBoxIPC runs f in an IPC namespace of its own, with the init's message
// queue file system q open on it.
func inBoxIPC(t testing.TB, f func(q mqueueDir)) {
	dir := t.TempDir()
	inOwnNamespaces(t, unix.CLONE_NEWIPC, func() {
		q, err := openMessageQueues(filepath.Join(dir, "mqueue"))
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(q.fd)
		f(q)
	})
}

func TestRemoveAllMessageQueues(t *testing.T) {
	inBoxIPC(t, func(q mqueueDir) {
		for _, name := range []string{"a", "b"} {
			fd, err := mqOpen(name, unix.O_CREAT|unix.O_RDWR)
			if err != nil {
				t.Errorf("mq_open %s: %v", name, err)
				return
			}
			unix.Close(fd)
		}
		size := func() int64 {
			var st unix.Stat_t
			if err := unix.Fstat(q.fd, &st); err != nil {
				t.Error(err)
			}
			return st.Size
		}
		if size() == q.emptySize {
			t.Errorf("the directory of two queues has the size of an empty one: removeAll would see none")
		}
		q.removeAll()
		for _, name := range []string{"a", "b"} {
			if _, err := mqOpen(name, unix.O_RDWR); !errors.Is(err, unix.ENOENT) {
				t.Errorf("queue %s after removeAll: %v, want ENOENT", name, err)
			}
		}
		if n := size(); n != q.emptySize {
			t.Errorf("the directory emptied has size %d, not %d: removeAll would read it after every run", n, q.emptySize)
		}
	})
}

// What a run that left no queue pays for the clean-up.
func BenchmarkRemoveMessageQueuesNoneLeft(b *testing.B) {
	inBoxIPC(b, func(q mqueueDir) {
		for b.Loop() {
			q.removeAll()
		}
	})
}
