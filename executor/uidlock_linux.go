package executor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// UIDLockDir is the host directory where every sandboxd holds its uids.
// It must be the same for every instance on the host, whatever its state
// dir: a container that shares uids with the host must share it too.
const UIDLockDir = "/run/sandboxd"

// UIDLock is a range of uids held by this instance, host-wide: the boxes
// of two sandboxd must never share a uid (RLIMIT_NPROC counts a uid's
// processes host-wide, and a uid's processes may signal each other).
//
// The range is a write lock on the bytes [first, first+count) of one host
// file, an open file description lock (F_OFD_SETLK): locks conflict exactly
// when ranges overlap, one system call takes a thousand uids, and the
// kernel drops the lock when the file is closed or the process dies, kill
// -9 included. (A file per uid would cost a thousand opens at start; a
// classic POSIX lock would not conflict between two executors of one
// process, and would go with the first close of any descriptor of the file.)
type UIDLock struct {
	file *os.File
	// holder is the file that tells other instances who holds the range.
	holder string
}

// LockUIDs takes uids [first, first+count) for this instance, whose state
// dir is stateDir, once CheckUIDRange allows them. When another instance holds some of them, the error
// names them and, if that instance said so, its pid and state dir.
func LockUIDs(dir string, first, count int, stateDir string) (*UIDLock, error) {
	if err := CheckUIDRange(first, count); err != nil {
		return nil, err
	}
	last := first + count - 1
	if err := os.MkdirAll(filepath.Join(dir, "holders"), 0o700); err != nil {
		return nil, fmt.Errorf("create uid lock dir: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "holders")} {
		if err := CheckOwnDir("uid lock dir", d); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "uids.lock"), os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open uid lock: %w", err)
	}
	want := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: int64(first), Len: int64(count)}
	lk := want
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		defer f.Close()
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("lock uids %d to %d: %w", first, last, err)
		}
		return nil, fmt.Errorf("uids %d to %d are in use: %s; give each sandboxd on this host its own --uid-base range", first, last, heldBy(dir, f, want))
	}
	l := &UIDLock{file: f, holder: filepath.Join(dir, "holders", rangeName(first, last))}
	// Whoever holds the lock on exactly this range wrote this file last.
	record := fmt.Sprintf("pid %d, state dir %s\n", os.Getpid(), stateDir)
	if err := writeHolder(l.holder, record); err != nil {
		l.Release()
		return nil, fmt.Errorf("record uid holder: %w", err)
	}
	return l, nil
}

// CheckOwnDir refuses a lock dir (what names it) that someone else could
// have prepared: a symlink, or a directory another user owns or may write
// in. Its files are opened and written as root: a file planted as a
// symlink would have sandboxd write or lock whatever it names.
func CheckOwnDir(what, dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s %s is not a directory (a symlink?): remove it", what, dir)
	case int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0:
		return fmt.Errorf("%s %s is owned by uid %d with mode %04o: it must be this user's (uid %d) and writable by no one else; remove it", what, dir, st.Uid, st.Mode&0o7777, os.Geteuid())
	}
	return nil
}

// writeHolder writes the holder file, never through a symlink.
func writeHolder(path, record string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(record)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// heldBy says which instance holds a lock that conflicts with want.
func heldBy(dir string, f *os.File, want unix.Flock_t) string {
	other := want
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, &other); err != nil || other.Type == unix.F_UNLCK {
		return "another sandboxd holds some of them (it has just ended, or it is starting: try again)"
	}
	first, last := int(other.Start), int(other.Start+other.Len-1)
	who := "another sandboxd"
	record, err := os.ReadFile(filepath.Join(dir, "holders", rangeName(first, last)))
	if fields := strings.Fields(string(record)); err == nil && len(fields) > 1 && alive(strings.TrimSuffix(fields[1], ",")) {
		who += " (" + strings.TrimSpace(string(record)) + ")"
	}
	return fmt.Sprintf("%s holds uids %d to %d", who, first, last)
}

// alive tells whether the process of a pid read from a holder file exists:
// a file left by a killed instance must not name its state dir.
func alive(pid string) bool {
	n, err := strconv.Atoi(pid)
	return err == nil && n > 0 && unix.Kill(n, 0) != unix.ESRCH
}

func rangeName(first, last int) string { return fmt.Sprintf("%d-%d", first, last) }

// Release gives the uids back.
func (l *UIDLock) Release() {
	os.Remove(l.holder)
	l.file.Close()
}
