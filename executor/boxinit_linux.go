package executor

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/criyle/go-sandbox/pkg/forkexec"
	"github.com/criyle/go-sandbox/pkg/rlimit"
	json "github.com/goccy/go-json"
	"golang.org/x/sys/unix"

	"sandboxd/spec"
)

// A box's init is the sandboxd binary started again with boxInitEnv set, in
// new pid, mount, network, IPC and UTS namespaces. It builds the box's root
// once, then starts one program per run request. Being PID 1 of the box, it
// reaps every orphan, and kill(-1) from it reaches every process of the box,
// which is how a run ends: nothing outlives the main process. The program is
// never PID 1, so it gets the default signal behaviour of any process.
//
// Programs are started with go-sandbox's forkexec, which does in the child
// what Go's syscall.ForkExec cannot: rlimits, no_new_privs, dropping every
// capability, in a vfork (clone3 into the run's cgroup on cgroup v2).

// RunBoxInitIfRequested turns this process into a box init when the host
// started it as one; it never returns then. Call it first thing in main.
func RunBoxInitIfRequested() {
	cfg, ok := os.LookupEnv(boxInitEnv)
	if !ok {
		return
	}
	os.Exit(boxInit(cfg))
}

// programFilter is the seccomp filter each program gets on top of the one
// it inherits from the init; nil when the init's is enough.
var programFilter *syscall.SockFprog

func boxInit(cfgJSON string) int {
	// Only sandboxd ends a box: signals that reach the init otherwise (a
	// terminal's, say) are caught and dropped. Caught, not ignored: an
	// ignored signal would stay ignored in every program the init starts.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	syscall.CloseOnExec(initCtlFD)
	syscall.CloseOnExec(initKillFD)
	// The init holds its sockets and nothing else of the host that a
	// program could inherit.
	var cfg initConfig
	err := closeInheritedFDs(initKillFD + 1)
	if err == nil {
		err = json.Unmarshal([]byte(cfgJSON), &cfg)
	}
	if err == nil {
		err = buildRoot(&cfg)
	}
	if err == nil {
		err = dropInitPrivileges()
	}
	if err == nil {
		programFilter, err = confineInit(cfg.BornInCgroup)
	}
	if err != nil {
		sendInit(initCtlFD, &initMessage{Op: opFailed, Error: err.Error()}, nil)
		return 1
	}
	if err := sendInit(initCtlFD, &initMessage{Op: opReady}, nil); err != nil {
		return 1
	}
	serveInit(&cfg)
	return 0
}

// dropInitPrivileges removes what no program of the box should inherit:
// supplementary groups, and the ability to gain privileges through execve.
func dropInitPrivileges() error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

// A hostView is a host path a box shows only while a run asks for it. It
// waits, bound when the box is built, below viewsDir, which the box user
// cannot enter, and is bound at its place for the run. (The bind's own mode
// is the host path's; only a parent directory that is not a mount point can
// keep the box user out.)
type hostView struct {
	hidden, target string
	attrs          mountAttrs               // of the hidden bind, which the run's bind keeps
	hostPath       func(*initConfig) string // empty when the host lacks it
}

// viewsDir holds the waiting views: root's, mode 0700.
const viewsDir = "/.views"

var (
	// The nix store, read-only: runs with a runtime, and installs.
	nixStoreView = hostView{viewsDir + "/nix-store", "/nix/store", readOnlyAttrs,
		func(c *initConfig) string { return c.NixStore }}
	// The nix daemon's socket directory: installs only.
	nixDaemonView = hostView{viewsDir + "/nix-daemon", NixDaemonSocketDir, writableAttrs,
		func(c *initConfig) string { return c.NixDaemon }}
)

// NixDaemonSocketDir holds the nix daemon's socket on the host and, during
// an install, in its box.
const NixDaemonSocketDir = "/nix/var/nix/daemon-socket"

// requestedViews are the views a run asks for.
func requestedViews(cfg *initConfig, m *initMessage) ([]hostView, error) {
	var views []hostView
	for _, r := range []struct {
		asked bool
		view  hostView
	}{{m.NixStore, nixStoreView}, {m.NixDaemon, nixDaemonView}} {
		if !r.asked {
			continue
		}
		if r.view.hostPath(cfg) == "" {
			return nil, fmt.Errorf("this host has no %s", r.view.target)
		}
		views = append(views, r.view)
	}
	return views, nil
}

// prepareView makes a view's target and binds its host path at its hidden place.
func prepareView(root string, v hostView, host string) error {
	if err := os.MkdirAll(filepath.Join(root, v.target), 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", v.target, err)
	}
	if err := os.MkdirAll(filepath.Join(root, viewsDir), 0o700); err != nil {
		return fmt.Errorf("mkdir %s: %w", viewsDir, err)
	}
	return bindMount(host, filepath.Join(root, v.hidden), v.attrs)
}

// buildRoot makes the box's file system in a fresh tmpfs and pivots into it.
func buildRoot(cfg *initConfig) error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := cfg.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=1m,nr_inodes=1024,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	in := func(p string) string { return filepath.Join(root, p) }
	// First, while no shown directory can be in the way of its mount point.
	var err error
	if messageQueues, err = openMessageQueues(in("/.mqueue")); err != nil {
		return err
	}
	for _, d := range cfg.Dirs {
		if err := showHostPath(d, in(d)); err != nil {
			return err
		}
	}
	for _, b := range []struct{ host, box string }{{cfg.Space, spec.SpaceDir}, {cfg.Tmp, "/tmp"}} {
		if err := bindMount(b.host, in(b.box), writableAttrs); err != nil {
			return err
		}
	}
	if err := buildDev(in("/dev")); err != nil {
		return err
	}
	if err := os.Mkdir(in("/proc"), 0o555); err != nil {
		return fmt.Errorf("mkdir /proc: %w", err)
	}
	if err := unix.Mount("proc", in("/proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, v := range []hostView{nixStoreView, nixDaemonView} {
		if host := v.hostPath(cfg); host != "" {
			if err := prepareView(root, v, host); err != nil {
				return err
			}
		}
	}
	if err := pivotInto(root); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	return os.Chdir(spec.SpaceDir)
}

// showHostPath makes host path p visible read-only at target: a directory by
// a bind mount, a symlink (such as /bin on merged-/usr systems) as a symlink.
func showHostPath(p, target string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", filepath.Dir(target), err)
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		link, err := os.Readlink(p)
		if err != nil {
			return fmt.Errorf("readlink %s: %w", p, err)
		}
		return os.Symlink(link, target)
	}
	return bindMount(p, target, readOnlyAttrs)
}

// bindMount binds source (a directory or a file) at target, creating target,
// with the mounts below source, then restricts every one of them with attrs.
func bindMount(source, target string, attrs mountAttrs) error {
	fi, err := os.Stat(source)
	if err != nil {
		return fmt.Errorf("stat %s: %w", source, err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("create mount point %s: %w", target, err)
	}
	if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", source, err)
	}
	return setTreeAttrs(target, attrs)
}

// devices are the host device nodes a box shows in its /dev.
var devices = []string{"null", "zero", "full", "random", "urandom"}

func buildDev(dev string) error {
	if err := os.Mkdir(dev, 0o755); err != nil {
		return fmt.Errorf("mkdir /dev: %w", err)
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755"); err != nil {
		return fmt.Errorf("mount /dev: %w", err)
	}
	for _, d := range devices {
		if err := bindMount("/dev/"+d, filepath.Join(dev, d), deviceAttrs); err != nil {
			return err
		}
	}
	// shm: POSIX shared memory and named semaphores (Python's
	// multiprocessing locks, say) live in the box's own /tmp.
	links := map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "shm": "/tmp"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return fmt.Errorf("link /dev/%s: %w", name, err)
		}
	}
	return unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

func pivotInto(root string) error {
	if err := os.Chdir(root); err != nil {
		return fmt.Errorf("chdir new root: %w", err)
	}
	if err := os.Mkdir(".old", 0o700); err != nil {
		return fmt.Errorf("mkdir .old: %w", err)
	}
	if err := unix.PivotRoot(".", ".old"); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount old root: %w", err)
	}
	if err := os.Remove("/.old"); err != nil {
		return fmt.Errorf("remove old root: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("make root read-only: %w", err)
	}
	return nil
}

// currentRun names the run in progress (0: none), so that a kill request
// that arrives late cannot end the next run.
var currentRun atomic.Uint64

// serveInit runs programs one after another until the host closes the
// socket; then it kills everything and returns, and the box is gone.
func serveInit(cfg *initConfig) {
	go serveKills()
	buf := make([]byte, maxInitMessage)
	for {
		m, fds, err := recvInit(initCtlFD, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Kill(-1, unix.SIGKILL)
			return
		}
		if m.Op == opRun {
			runProgram(cfg, m, fds)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// serveKills kills every process of the box (but the init) on request.
// When sandboxd is gone, so is the box: the socket's end is the lifeline that
// holds even while the init waits for a program.
func serveKills() {
	buf := make([]byte, 4096)
	for {
		m, _, err := recvInit(initKillFD, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Kill(-1, unix.SIGKILL)
			os.Exit(1)
		}
		if m.Op == opKill && m.Run == currentRun.Load() {
			unix.Kill(-1, unix.SIGKILL)
		}
	}
}

// runProgram starts the program of a run and waits for it: when the main
// process ends, everything else in the box is killed and reaped before the
// host hears that the run is over.
func runProgram(cfg *initConfig, m *initMessage, cgroupFDs []int) {
	fail := func(execFailed bool, err error) {
		sendInit(initCtlFD, &initMessage{Op: opFailed, Run: m.Run, Error: err.Error(), ExecFailed: execFailed}, nil)
	}
	views, err := requestedViews(cfg, m)
	if err == nil {
		err = showViews(views)
	}
	if err != nil {
		fail(false, err)
		return
	}
	defer hideViews(views)
	currentRun.Store(m.Run)
	defer currentRun.Store(0)
	pid, start, execFailed, err := startProgram(m, cgroupFDs)
	if err != nil {
		fail(execFailed, err)
		return
	}
	if err := sendInit(initCtlFD, &initMessage{Op: opStarted, Run: m.Run, StartNs: start}, nil); err != nil {
		unix.Kill(-1, unix.SIGKILL)
	}
	status, end := reapRun(pid)
	removeIPCObjects()
	messageQueues.removeAll()
	sendInit(initCtlFD, &initMessage{Op: opExited, Run: m.Run, EndNs: end, WaitStatus: uint32(status)}, nil)
}

// showViews binds views at their places; on failure none stays shown.
func showViews(views []hostView) error {
	for i, v := range views {
		if err := unix.Mount(v.hidden, v.target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			hideViews(views[:i])
			return fmt.Errorf("show %s: %w", v.target, err)
		}
	}
	return nil
}

func hideViews(views []hostView) {
	for _, v := range views {
		unix.Unmount(v.target, unix.MNT_DETACH)
	}
}

// removeIPCObjects removes the System V shared memory, message queues and
// semaphores the run left in the box's IPC namespace: they would outlive
// the run, pin memory, and carry data to the next program. A count from the
// kernel comes first: most runs leave none, and the tables cost more to read.
func removeIPCObjects() {
	for _, kind := range []struct {
		file  string
		count func() int32
		rmid  func(id int)
	}{
		{"/proc/sysvipc/shm",
			func() int32 { return ipcInfo(unix.SYS_SHMCTL, shmInfo, 0) }, // used_ids
			func(id int) { unix.Syscall(unix.SYS_SHMCTL, uintptr(id), unix.IPC_RMID, 0) }},
		{"/proc/sysvipc/msg",
			func() int32 { return ipcInfo(unix.SYS_MSGCTL, msgInfo, 0) }, // msgpool: the queues
			func(id int) { unix.Syscall(unix.SYS_MSGCTL, uintptr(id), unix.IPC_RMID, 0) }},
		{"/proc/sysvipc/sem",
			func() int32 { return ipcInfo(unix.SYS_SEMCTL, semInfo, 7) }, // semusz: the sets
			func(id int) { unix.Syscall6(unix.SYS_SEMCTL, uintptr(id), 0, unix.IPC_RMID, 0, 0, 0) }},
	} {
		if kind.count() == 0 {
			continue
		}
		data, err := os.ReadFile(kind.file)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		for _, line := range lines[1:] { // after the header: key id ...
			if f := strings.Fields(line); len(f) > 1 {
				if id, err := strconv.Atoi(f[1]); err == nil {
					kind.rmid(id)
				}
			}
		}
	}
}

// messageQueues is the box's POSIX message queue file system, open in the
// init and mounted nowhere in the box.
var messageQueues = mqueueDir{fd: -1}

// mqueueDir is an open message queue file system: one flat directory.
type mqueueDir struct {
	fd int
	// emptySize is the directory's size without queues: the file system
	// grows it with each queue.
	emptySize int64
}

// openMessageQueues opens the message queue file system of the init's IPC
// namespace, which is the box's and still has no queue, through a mount at
// mountPoint that is detached at once: the descriptor reaches it, no path does.
func openMessageQueues(mountPoint string) (mqueueDir, error) {
	q := mqueueDir{fd: -1}
	if err := os.Mkdir(mountPoint, 0o700); err != nil {
		return q, fmt.Errorf("mkdir %s: %w", mountPoint, err)
	}
	defer os.Remove(mountPoint)
	err := unix.Mount("mqueue", mountPoint, "mqueue", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if errors.Is(err, unix.ENODEV) {
		return q, nil // a kernel without POSIX message queues: no run can leave one
	}
	if err != nil {
		return q, fmt.Errorf("mount mqueue: %w", err)
	}
	fd, err := unix.Open(mountPoint, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	detachErr := unix.Unmount(mountPoint, unix.MNT_DETACH)
	var st unix.Stat_t
	if err == nil {
		err = detachErr
	}
	if err == nil {
		err = unix.Fstat(fd, &st)
	}
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return q, fmt.Errorf("open mqueue: %w", err)
	}
	return mqueueDir{fd: fd, emptySize: st.Size}, nil
}

// removeAll unlinks the POSIX message queues a run left: they live in the
// box's IPC namespace, which the box's runs share, and would carry data to
// the next program (reset_box empties only files). A run that left none
// costs one fstat. The run's processes are gone, so an unlinked queue is freed.
func (q mqueueDir) removeAll() {
	var st unix.Stat_t
	if q.fd < 0 || unix.Fstat(q.fd, &st) == nil && st.Size == q.emptySize {
		return
	}
	if _, err := unix.Seek(q.fd, 0, io.SeekStart); err != nil {
		return
	}
	var names []string
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(q.fd, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	for _, name := range names {
		unix.Unlinkat(q.fd, name, 0)
	}
}

// The *_INFO commands of shmctl, msgctl and semctl (linux/shm.h, msg.h, sem.h).
const (
	shmInfo = 14
	msgInfo = 12
	semInfo = 19
)

// ipcInfo asks a System V IPC call (shmctl, msgctl, semctl) for its *_INFO
// table and returns the int at index field: how many objects exist. On
// doubt it says -1, and the table is read.
func ipcInfo(call uintptr, cmd int, field int) int32 {
	var info [16]int32 // larger than shm_info, msginfo and seminfo
	var r1 uintptr
	var errno unix.Errno
	if call == unix.SYS_SEMCTL {
		r1, _, errno = unix.Syscall6(call, 0, 0, uintptr(cmd), uintptr(unsafe.Pointer(&info[0])), 0, 0)
	} else {
		r1, _, errno = unix.Syscall(call, 0, uintptr(cmd), uintptr(unsafe.Pointer(&info[0])))
	}
	if errno != 0 || int(r1) < 0 {
		return -1
	}
	return info[field]
}

// reapRun waits for the main process, then kills and reaps every other process.
func reapRun(mainPid int) (unix.WaitStatus, int64) {
	var mainStatus unix.WaitStatus
	var end int64
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil { // ECHILD: nothing is left
			return mainStatus, end
		}
		if pid == mainPid {
			end = monotonicNs()
			mainStatus = ws
			unix.Kill(-1, unix.SIGKILL)
		}
	}
}

func startProgram(m *initMessage, cgroupFDs []int) (pid int, start int64, execFailed bool, err error) {
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
	args, execFile, err := execTarget(m.Argv, envValue(env, "PATH"))
	if err != nil {
		return 0, 0, true, err
	}
	if execFile != nil {
		defer execFile.Close()
	}
	rl := make([]rlimit.RLimit, len(m.RLimits))
	for i, r := range m.RLimits {
		rl[i] = rlimit.RLimit{Res: r.Resource, Rlim: syscall.Rlimit{Cur: r.Value, Max: r.Value}}
	}
	files := make([]uintptr, len(stdio))
	for i, f := range stdio {
		files[i] = f.Fd()
	}
	runner := forkexec.Runner{
		Args:       args,
		Env:        env,
		Files:      files,
		WorkDir:    spec.SpaceDir,
		RLimits:    rl,
		NoNewPrivs: true,
		DropCaps:   true,
		Seccomp:    programFilter,
		Credential: &syscall.Credential{Uid: uint32(m.UID), Gid: uint32(m.GID), Groups: []uint32{}},
	}
	if execFile != nil {
		runner.ExecFile = execFile.Fd()
	}
	if len(cgroupFDs) > 0 {
		// Born in the run's cgroup (v2); on v1 the init's own cgroups hold it.
		runner.CgroupFd = uintptr(cgroupFDs[0])
	}
	start = monotonicNs()
	pid, err = startAsOOMVictim(&runner)
	if err != nil {
		var ce forkexec.ChildError
		if errors.As(err, &ce) && ce.Location == forkexec.LocExecve {
			return 0, 0, true, fmt.Errorf("execute %s: %w", spec.Quote(m.Argv[0]), ce.Err)
		}
		return 0, 0, false, fmt.Errorf("start %s: %w", spec.Quote(m.Argv[0]), err)
	}
	return pid, start, false, nil
}

// execTarget decides how to execute argv as execvp would: forkexec executes
// Args[0], so a bare name found in PATH is executed through an open file
// (execveat), which leaves argv[0] as the judge gave it. A script cannot be
// run that way (its interpreter opens it by name), but the kernel hands a
// script its path, not argv[0], so there Args[0] becomes the path found.
func execTarget(argv []string, pathEnv string) (args []string, execFile *os.File, err error) {
	if strings.Contains(argv[0], "/") {
		return argv, nil, nil // a path: executed from /space, as given
	}
	exe, err := lookPath(argv[0], pathEnv, isExecutableFile)
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

// startAsOOMVictim starts the program so that the OOM killer picks it and
// its children before the init, which shares the box's memory group on
// cgroup v1: the child inherits the init's oom_score_adj, raised for the
// moment of the fork. A program may lower its own score back to 0 (only
// CAP_SYS_RESOURCE, which some hosts deny even to root, would set a floor);
// if the init is killed then, the run is MemoryLimitExceeded and the box
// gets a new init (nativeBox.run).
func startAsOOMVictim(runner *forkexec.Runner) (int, error) {
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0); err != nil {
		return 0, fmt.Errorf("raise oom_score_adj: %w", err)
	}
	defer os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0)
	return runner.Start()
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
