package native

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	json "github.com/goccy/go-json"
	"golang.org/x/sys/unix"

	"sandboxd/executor"
)

// A box's init is the sandboxd binary started again with boxInitEnv set, in
// new pid, mount, network, IPC and UTS namespaces. It builds the box's root
// once, then starts one program per run request. Being PID 1 of the box, it
// reaps every orphan, and kill(-1) from it reaches every process of the box,
// which is how a run ends: nothing outlives the main process. The program is
// never PID 1, so it gets the default signal behaviour of any process.
//
// Programs are started by a vfork whose child does what Go's
// syscall.ForkExec cannot: joining the run's memory group (cgroup v1),
// rlimits, no_new_privs, dropping every capability, seccomp (program).

// RunBoxInitIfRequested turns this process into a box init when the host
// started it as one; it never returns then. Call it first thing in main.
func RunBoxInitIfRequested() {
	cfg, ok := os.LookupEnv(boxInitEnv)
	if !ok {
		return
	}
	os.Exit(runInit(cfg))
}

// boxInit is the state of a box's init: its configuration, and what it set
// up once for every run.
type boxInit struct {
	cfg initConfig
	// programFilter is the seccomp filter each program gets on top of the
	// one it inherits from the init; nil when the init's is enough.
	programFilter *syscall.SockFprog
	// currentRun names the run in progress (0: none), so that a kill request
	// that arrives late cannot end the next run.
	currentRun atomic.Uint64
	// killedRun is the last run the host asked to kill, which may come
	// before the init began it: its program is killed as soon as it runs.
	killedRun atomic.Uint64
	// started is when the current run's program started, once it has: the
	// host asks for it only when a time limit nears (opWhenStarted), and
	// learns it from opExited otherwise, so no message crosses while the
	// program runs.
	started atomic.Pointer[runStart]
	// meter measures the current run's CPU time (cgroup v1).
	meter atomic.Pointer[cpuMeter]
	// messageQueues is the box's POSIX message queue file system, open in
	// the init and mounted nowhere in the box.
	messageQueues mqueueDir
	// lastPID is the box's /proc/sys/kernel/ns_last_pid, open for writing.
	lastPID int
	// ctl and kill are the init's ends of the sockets (initCtlFD, initKillFD).
	// They stay blocking, as does wait4, unlike the host's: parked in the
	// poller, the init would be idle between runs, the Go runtime's monitor
	// would sleep then, and each run's first system call would wake it to
	// look every 20 µs again until the init is idle; while the init waits in
	// a system call, the monitor keeps the slow pace it settles to. Parked
	// (SIGCHLD through os/signal for wait4), a run of /bin/true cost the init
	// 1.6 times the context switches.
	ctl, kill *initSocket
}

func runInit(cfgJSON string) int {
	// Only sandboxd ends a box: signals that reach the init otherwise (a
	// terminal's, say) are caught and dropped. Caught, not ignored: an
	// ignored signal would stay ignored in every program the init starts.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	syscall.CloseOnExec(initCtlFD)
	syscall.CloseOnExec(initKillFD)
	// The init holds its sockets and nothing else of the host that a
	// program could inherit.
	in := &boxInit{messageQueues: mqueueDir{fd: -1}, lastPID: -1}
	err := executor.CloseInheritedFDsFrom(initKillFD + 1)
	if err == nil {
		in.ctl, err = newInitSocket(initCtlFD, "ctl", false)
	}
	if err == nil {
		in.kill, err = newInitSocket(initKillFD, "kill", false)
	}
	if err == nil {
		err = json.Unmarshal([]byte(cfgJSON), &in.cfg)
	}
	if err == nil {
		err = in.buildRoot()
	}
	if err == nil && in.cfg.Loopback {
		err = bringUpLoopback()
	}
	if err == nil {
		err = dropInitPrivileges()
	}
	if err == nil {
		in.programFilter, err = confineInit(in.cfg.BornInCgroup)
	}
	if err != nil {
		if in.ctl != nil {
			in.ctl.send(&initMessage{Op: opFailed, Error: err.Error()}, nil)
		}
		return 1
	}
	if err := in.ctl.send(&initMessage{Op: opReady}, nil); err != nil {
		return 1
	}
	in.serve()
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

// serve runs programs one after another until the host closes the
// socket; then it kills everything and returns, and the box is gone.
func (in *boxInit) serve() {
	go in.serveKills()
	buf := make([]byte, maxInitMessage)
	for {
		m, fds, err := in.ctl.recv(buf, time.Time{})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Kill(-1, unix.SIGKILL)
			return
		}
		switch m.Op {
		case opRun:
			in.runProgram(m, fds)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
}

// serveKills kills every process of the box (but the init) on request.
// When sandboxd is gone, so is the box: the socket's end is the lifeline that
// holds even while the init waits for a program.
func (in *boxInit) serveKills() {
	buf := make([]byte, 4096)
	for {
		m, _, err := in.kill.recv(buf, time.Time{})
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Kill(-1, unix.SIGKILL)
			os.Exit(1)
		}
		switch m.Op {
		case opWhenStarted:
			in.kill.send(in.startOf(m.Run), nil)
			continue
		case opKill:
			in.killedRun.Store(m.Run)
		}
		// After killedRun: a run that begins meanwhile sees it once its
		// program runs (runProgram), or is current here.
		if m.Run != in.currentRun.Load() {
			continue
		}
		switch m.Op {
		case opKill:
			unix.Kill(-1, unix.SIGKILL)
		case opCheckCPU:
			used, ok := in.meter.Load().sofar()
			if !ok || used >= m.CPULimitNs {
				unix.Kill(-1, unix.SIGKILL)
			}
			in.ctl.send(&initMessage{Op: opCPU, Run: m.Run, RunCPUNs: &used, Killed: !ok || used >= m.CPULimitNs}, nil)
		}
	}
}

// runProgram starts the program of a run and waits for it: when the main
// process ends, everything else in the box is killed and reaped before the
// host hears that the run is over.
func (in *boxInit) runProgram(m *initMessage, fds []int) {
	fail := func(execFailed bool, err error) {
		var errno syscall.Errno
		noMemory := execFailed && errors.As(err, &errno) && (errno == unix.ENOMEM || errno == unix.E2BIG)
		in.ctl.send(&initMessage{Op: opFailed, Run: m.Run, Error: err.Error(), ExecFailed: execFailed, ExecNoMemory: noMemory}, nil)
	}
	// The run's accounting fds come first: the cgroup the program is born in
	// (v2), or the box's CPU counter and the tasks file of the run's memory
	// group (v1). Without them the program would be accounted where the init
	// is: in the box's group, with the init's own memory and CPU.
	acctFDs, pipeFDs, err := splitRunFDs(m, fds)
	if err != nil {
		fail(false, err)
		return
	}
	group := noRunGroup
	meter := &cpuMeter{counter: -1}
	switch {
	case in.cfg.BornInCgroup && len(acctFDs) == 1:
		group.cgroupFD = acctFDs[0]
	case !in.cfg.BornInCgroup && len(acctFDs) == 2:
		meter.counter, group.tasksFD = acctFDs[0], acctFDs[1]
	default:
		fail(false, fmt.Errorf("a run with %d accounting fds", len(acctFDs)))
		return
	}
	views, err := requestedViews(&in.cfg, m)
	if err == nil {
		err = showViews(views)
	}
	if err != nil {
		fail(false, err)
		return
	}
	defer hideViews(views)
	meter.begin()
	defer meter.stop()
	in.meter.Store(meter)
	in.currentRun.Store(m.Run)
	defer in.currentRun.Store(0)
	pid, start, execFailed, err := in.startProgram(m, group, pipeFDs)
	if err != nil {
		fail(execFailed, err)
		return
	}
	in.started.Store(&runStart{run: m.Run, startNs: start, initCPUNs: meter.initCPU()})
	if in.killedRun.Load() == m.Run {
		unix.Kill(-1, unix.SIGKILL) // the host asked before the program ran
	}
	status, end := reapRun(pid)
	// Cleared before the exit report, which carries the start: a run the
	// host knows to have ended has no start to tell (startOf).
	in.started.Store(nil)
	runCPU := meter.end()
	removeIPCObjects()
	in.messageQueues.removeAll()
	in.ctl.send(&initMessage{Op: opExited, Run: m.Run, StartNs: start, EndNs: end, WaitStatus: uint32(status), RunCPUNs: runCPU}, nil)
}

// runStart is when a run's program started, and what the CPU counter held
// of the init's own work then (cgroup v1).
type runStart struct {
	run                uint64
	startNs, initCPUNs int64
}

// startOf answers opWhenStarted: StartNs 0 tells that run's program has
// not started, or has ended.
func (in *boxInit) startOf(run uint64) *initMessage {
	m := &initMessage{Op: opStarted, Run: run}
	if s := in.started.Load(); s != nil && s.run == run {
		m.StartNs, m.InitCPUNs = s.startNs, s.initCPUNs
	}
	return m
}

// cpuMeter measures a run's CPU time exactly on cgroup v1, where the box's
// CPU counter (cpuacct.usage) also holds the init's own work: fork, wait,
// reap. The init reads its own CPU time (getrusage, every thread) and the
// counter before the program starts and after every process of the run is
// reaped; the run's CPU time is the counter's growth less the init's. The
// init's CPU time comes first in each pair: reading it brings the counter
// up to date with the init's running threads.
type cpuMeter struct {
	counter    int // the counter, -1 when none was given (v2)
	self0      int64
	counterAt0 int64
	// mu guards the counter from a check (sofar) after the run.
	mu      sync.Mutex
	stopped bool
}

// sofar is the run's CPU time until now, for a check of the CPU limit; it
// tells whether it could be measured.
func (c *cpuMeter) sofar() (int64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.counter < 0 || c.counterAt0 < 0 {
		return 0, false
	}
	self, counter := ownCPUNs(), readCounterNs(c.counter)
	return counter - c.counterAt0 - (self - c.self0), counter >= 0
}

// stop ends the meter's use of the counter, which is closed after the run.
func (c *cpuMeter) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
}

func (c *cpuMeter) begin() {
	if c.counter >= 0 {
		c.self0, c.counterAt0 = ownCPUNs(), readCounterNs(c.counter)
	}
}

// initCPU is what the counter holds of the init's work once the program
// has started, which the limit watch leaves out.
func (c *cpuMeter) initCPU() int64 {
	if c.counter < 0 || c.counterAt0 < 0 {
		return 0
	}
	return c.counterAt0 + ownCPUNs() - c.self0
}

// end reports the run's CPU time in ns, or nil when it was not measured
// (v2, or a counter that could not be read).
func (c *cpuMeter) end() *int64 {
	if c.counter < 0 || c.counterAt0 < 0 {
		return nil
	}
	self, counter := ownCPUNs(), readCounterNs(c.counter)
	if counter < 0 {
		return nil
	}
	run := max(0, counter-c.counterAt0-(self-c.self0))
	return &run
}

// ownCPUNs is the init's user+system time, every thread, in ns.
func ownCPUNs() int64 {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// readCounterNs reads a cpuacct.usage (ns); -1 when it cannot.
func readCounterNs(fd int) int64 {
	buf := make([]byte, 32)
	n, err := unix.Pread(fd, buf, 0)
	if err != nil || n <= 0 {
		return -1
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(string(buf[:n])), 10, 64)
	if err != nil {
		return -1
	}
	return ns
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
