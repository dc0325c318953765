package native

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"sandboxd/executor"
	"sandboxd/spec"
)

// runGroup is where a run's program is accounted: the cgroup of cgroupFD,
// where it is born (v2), or the memory group whose tasks file is tasksFD,
// which it joins before it executes (v1); -1 for none.
type runGroup struct{ cgroupFD, tasksFD int }

// noRunGroup leaves the program where the init is.
var noRunGroup = runGroup{cgroupFD: -1, tasksFD: -1}

// startProgram starts the program of run m in its group, with pipeFDs at
// the fds m.PipeFDs names.
func (in *boxInit) startProgram(m *initMessage, group runGroup, pipeFDs []int) (pid int, start int64, execFailed bool, err error) {
	// Stdio is opened with the box user's file-system identity, which Linux
	// keeps per thread: the thread must not change while it is borrowed.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	stdio, err := openStdio(m)
	if err != nil {
		return 0, 0, true, err
	}
	defer func() {
		for _, f := range stdio {
			f.Close()
		}
	}()
	env := m.Env
	args, execFile, err := execTarget(m.Argv, m.Path)
	if err != nil {
		return 0, 0, true, err
	}
	if execFile != nil {
		defer execFile.Close()
	}
	files := make([]int, len(stdio))
	for i, f := range stdio {
		files[i] = int(f.Fd())
	}
	prog := &program{
		path:     args[0],
		execFD:   -1,
		argv:     args,
		env:      env,
		files:    withPipes(files, m.PipeFDs, pipeFDs),
		dir:      spec.SpaceDir,
		uid:      m.UID,
		gid:      m.GID,
		rlimits:  m.RLimits,
		filter:   in.programFilter,
		runGroup: group,
	}
	if execFile != nil {
		prog.execFD = int(execFile.Fd())
	}
	if err := in.startPIDsOver(); err != nil {
		return 0, 0, false, err
	}
	start = monotonicNs()
	if pid, err = prog.start(); err != nil {
		var se *spawnError
		switch {
		case errors.As(err, &se) && se.Step == stepExec:
			return 0, 0, true, fmt.Errorf("execute %s: %w", spec.Quote(m.Argv[0]), se.Errno)
		case errors.As(err, &se) && se.Step == stepRlimit && int(se.Index) < len(m.RLimits):
			// Raising a hard limit needs CAP_SYS_RESOURCE, which some hosts
			// deny even to root: a bound above sandboxd's own cannot be set.
			r := m.RLimits[se.Index]
			return 0, 0, true, fmt.Errorf("set %s to %d: %w (above the hard limit sandboxd runs with, and this host lets no process raise it)",
				rlimitNames[r.Resource], r.Value, se.Errno)
		}
		return 0, 0, false, fmt.Errorf("start %s: %w", spec.Quote(m.Argv[0]), err)
	}
	return pid, start, false, nil
}

// rlimitNames name the rlimits a run sets, as the protocol's fields bound them.
var rlimitNames = map[int]string{
	unix.RLIMIT_CORE: "RLIMIT_CORE", unix.RLIMIT_CPU: "RLIMIT_CPU", unix.RLIMIT_FSIZE: "RLIMIT_FSIZE (file_size_limit)",
	unix.RLIMIT_NOFILE: "RLIMIT_NOFILE (open_files_limit)", unix.RLIMIT_NPROC: "RLIMIT_NPROC (processes_limit)", unix.RLIMIT_STACK: "RLIMIT_STACK (stack_limit)",
}

// firstPID is the pid of every run's program. The init's own threads take
// pids of the box too, as many as the Go runtime happened to start, so
// the pid after the init's is not always the same: the box's next pid is
// set before each run instead, above the threads a Go init starts.
const firstPID = 100

// startPIDsOver makes the next process of the box pid firstPID (or the
// first free one after it), so that no program can tell from its pids
// how many runs the box had, nor whether it was reset.
//
// The kernel sets the next pid without the lock that allocating a pid
// takes: a thread that the init's Go runtime creates at that moment, having
// read the old next pid, stores its own successor after the write and undoes
// it (the first program after a reset_box was once pid 9 in the emulated
// cgroup v2 guest, whose vCPUs stall inside such a moment). So the write is
// followed by a memory barrier on every CPU that runs a thread of the init
// (such a creation on another CPU is seen through), read back, and made
// again if it was undone. The barrier makes it rare, not impossible: a
// creation can still be in its locked moment while the barrier passes.
func (in *boxInit) startPIDsOver() error {
	for try := 0; ; try++ {
		if _, err := unix.Pwrite(in.lastPID, []byte(strconv.Itoa(firstPID-1)), 0); err != nil {
			return fmt.Errorf("set the box's next pid: %w", err)
		}
		unix.Syscall(unix.SYS_MEMBARRIER, membarrierPrivateExpedited, 0, 0)
		last, ok := readInt(in.lastPID)
		// Past firstPID-1: threads the runtime created since the write.
		if !ok || last >= firstPID-1 && last < firstPID+maxPIDDrift || try == maxPIDTries {
			return nil
		}
	}
}

// The membarrier(2) commands the init uses; it registers once (buildRoot).
const (
	membarrierPrivateExpedited         = 1 << 3
	membarrierRegisterPrivateExpedited = 1 << 4
)

const (
	// maxPIDDrift bounds the pids the init's threads may take between
	// setting the next pid and reading it back.
	maxPIDDrift = 8
	// maxPIDTries bounds the writes of the next pid: each undone one
	// means a thread was created, and the runtime creates few.
	maxPIDTries = 10
)

// readInt reads a number from a /proc/sys file kept open.
func readInt(fd int) (int, bool) {
	buf := make([]byte, 32)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n <= 0 {
		return 0, false
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return v, err == nil
}

// execTarget decides how to execute argv as execvp would: a bare name found
// in PATH is executed through an open file (execveat), which leaves argv[0]
// as the judge gave it. A script cannot be
// run that way (its interpreter opens it by name), but the kernel hands a
// script its path, not argv[0], so there Args[0] becomes the path found.
func execTarget(argv []string, searchPath string) (args []string, execFile *os.File, err error) {
	if strings.Contains(argv[0], "/") {
		return argv, nil, nil // a path: executed from /space, as given
	}
	exe, err := executor.LookPath(argv[0], searchPath, executor.IsExecutableFile)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(exe, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", spec.Quote(exe), err)
	}
	magic := make([]byte, 2)
	if n, _ := f.ReadAt(magic, 0); n == 2 && string(magic) == "#!" {
		f.Close()
		return append([]string{exe}, argv[1:]...), nil, nil
	}
	return argv, f, nil
}

// openStdio opens the run's standard streams as the box user, so that a
// path can reach only what the program itself could.
func openStdio(m *initMessage) (files []*os.File, err error) {
	prevGID, _ := unix.SetfsgidRetGid(m.GID)
	prevUID, _ := unix.SetfsuidRetUid(m.UID)
	defer func() {
		unix.SetfsuidRetUid(prevUID)
		unix.SetfsgidRetGid(prevGID)
		// A change of file-system identity clears the thread's parent-death
		// signal, which the host set so that the box dies with sandboxd.
		unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	}()
	streams := []struct {
		name, path string
		write      bool
	}{{"stdin", m.Stdin, false}, {"stdout", m.Stdout, true}, {"stderr", m.Stderr, true}}
	opened := map[string]*os.File{}
	for _, s := range streams {
		p := "/dev/null"
		if s.path != "" {
			p = spec.BoxPath(s.path)
		}
		f, err := openStream(p, s.write, opened[p])
		if err != nil {
			for _, f := range files {
				f.Close()
			}
			return nil, fmt.Errorf("open %s %s: %w", s.name, spec.Quote(s.path), err)
		}
		if s.write {
			opened[p] = f
		}
		files = append(files, f)
	}
	return files, nil
}

// errMagicLink is why a stdio path through a magic link is refused.
var errMagicLink = errors.New("the path goes through a magic link (such as /proc/self/fd/N or /dev/stdin, which would name the sandbox's own descriptors), or through too many symbolic links")

// openStream opens one stream. The init opens it, so a magic link
// (/proc/<pid>/fd/N, /proc/<pid>/cwd, /dev/stdin, ...) would lead to the
// init's own descriptors and directories: none is followed (the init's root
// is the box's, so every other path resolves inside the box). A FIFO or
// socket would block the init or reach outside the run, so only regular
// files and devices are accepted. stdout and stderr naming the same file
// share one open file.
func openStream(p string, write bool, same *os.File) (*os.File, error) {
	if same != nil {
		fd, err := unix.FcntlInt(same.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return os.NewFile(uintptr(fd), p), nil
	}
	how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY, Resolve: unix.RESOLVE_NO_MAGICLINKS}
	if write {
		how.Flags = unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
		how.Mode = 0o644
	}
	fd, err := unix.Openat2(unix.AT_FDCWD, p, &how)
	switch {
	case errors.Is(err, unix.ELOOP):
		return nil, errMagicLink
	case errors.Is(err, unix.ENOSYS):
		return nil, fmt.Errorf("openat2: %w (sandboxd needs Linux 5.6 or later)", err)
	case err != nil:
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFCHR {
		unix.Close(fd)
		return nil, fmt.Errorf("not a regular file or device")
	}
	// The init opens the file, and /proc lets a process open its own files
	// that it guards from others (its memory map, its status): none of
	// /proc is a program's input or output.
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type == unix.PROC_SUPER_MAGIC {
		unix.Close(fd)
		return nil, errors.New("a file in /proc cannot be a standard stream")
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, int(how.Flags&^unix.O_NONBLOCK)); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), p), nil
}
