package native

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"golang.org/x/sys/unix"

	"sandboxd/executor"
)

// The host and a box's init process talk over two SOCK_SEQPACKET socket
// pairs: one JSON message per packet, with the run's cgroup directory (cgroup
// v2), or the box's CPU counter and the tasks file of the run's memory group
// (v1), passed alongside a run request as SCM_RIGHTS, and so are the pipe
// ends of a run_group's program.
//
//	host (box.startInit, run)          init (runInit, serve)
//	  start /proc/self/exe  ───────▶   build the root, confine itself
//	                        ◀── ctl ── ready | failed
//	  per run:
//	  run {argv, env, ...}  ── ctl ──▶  show views, start the program (v1:
//	                                    its process joins the run's memory
//	                                    group before it executes)
//	                        ◀── ctl ── failed {exec_failed}, if it could not
//	  when_started          ── kill ─▶  (only as a time limit nears)
//	                        ◀── kill ─ started {start, 0 if not yet}
//	  kill {run}            ── kill ─▶  kill(-1)      (limits, cancel; a kill
//	                                    that comes first kills the program
//	                                    as soon as it runs)
//	  check_cpu {limit}     ── kill ─▶  kill(-1) if the run's CPU is past it (v1)
//	                        ◀── ctl ── cpu {run_cpu, killed}
//	                        ◀── ctl ── exited {start, end, wait status}
//	                                    (everything of the run reaped)
//
// Nothing crosses while a program runs unless the host asks: each message
// wakes the other side, and its work in the middle of the run cost the
// program 0.15 ms of a run of /bin/true here.
//	  close ctl, kill       ─────────▶  kill(-1), exit: the box is gone
//	  stderr (a pipe)       ◀───────── a crash's last words (initStderr)

// boxInitEnv carries an init's initConfig from the host; its presence makes
// the sandboxd binary act as a box init (see RunBoxInitIfRequested).
const boxInitEnv = "SANDBOXD_BOX_INIT"

// The init's ends of the two socket pairs: run requests and replies on one,
// kill requests on the other.
const (
	initCtlFD  = 3
	initKillFD = 4
)

// initConfig tells a box's init how to build the box's root.
type initConfig struct {
	Root     string   // empty host directory where the new root is built
	Space    string   // host directory shown as /space
	Tmp      string   // host directory shown as /tmp
	Dirs     []string // host directories shown read-only
	Hostname string
	// Loopback: the box's loopback interface is up (open_box's network).
	Loopback bool
	// Views are the host views a run may ask for, those the host has.
	Views []executor.HostView

	// BornInCgroup: programs are started with clone3 into their run's
	// cgroup (cgroup v2), so the init must keep clone3.
	BornInCgroup bool
}

type initOp string

const (
	opRun  initOp = "run"  // host → init: start a program
	opKill initOp = "kill" // host → init: kill every process of the run
	// host → init: kill the run's processes if the run's CPU time is past
	// CPULimitNs; the init answers opCPU (cgroup v1).
	opCheckCPU initOp = "check_cpu"
	opCPU      initOp = "cpu"   // init → host: RunCPUNs so far, and whether it killed the run
	opReady    initOp = "ready" // init → host: the box is built
	// host → init, on the kill socket: when did the run's program start?
	// The init answers opStarted there (StartNs 0: it has not).
	opWhenStarted initOp = "when_started"
	opStarted     initOp = "started"
	opFailed      initOp = "failed" // init → host: the box or the program could not start
	opExited      initOp = "exited" // init → host: the main process ended, every process is gone
)

type rlimitValue struct {
	Resource int
	Value    uint64
}

// initMessage is every message of the init protocol; each op uses some fields.
type initMessage struct {
	Op initOp
	// Run names the run an opRun starts, an opKill ends, and every reply
	// to an opRun is about.
	Run uint64

	// opRun
	Argv     []string
	Env      []string
	Stdin    string
	Stdout   string
	Stderr   string
	UID, GID int
	RLimits  []rlimitValue
	Path     string   // where a bare Argv[0] is searched
	Views    []string // the host views shown to the run, by path
	// PipeFDs are the fds of the program that the last files sent with the
	// request become, in order (run_group's pipes).
	PipeFDs []int

	// opFailed
	Error string
	// ExecFailed tells a failure to start the program from a failure of the
	// box; ExecNoMemory, an exec that failed as one does whose memory is
	// refused (ENOMEM, or E2BIG: no room for argv and env on its new stack).
	ExecFailed, ExecNoMemory bool

	// StartNs (opStarted, opExited) and EndNs (opExited): CLOCK_MONOTONIC,
	// shared by host and init.
	StartNs, EndNs int64
	// opExited: the wait status of the main process.
	WaitStatus uint32
	// InitCPUNs (opStarted) is what the CPU counter the init shares with the
	// run held when the program started; RunCPUNs (opExited) is the run's CPU
	// time, the counter's growth less the init's own. Cgroup v1 only.
	InitCPUNs int64
	RunCPUNs  *int64
	// opCheckCPU: the CPU time limit; opCPU: whether the init killed the run for it.
	CPULimitNs int64
	Killed     bool
}

// maxInitMessage bounds one packet: argv and env of a run must fit.
const maxInitMessage = 1 << 20

// initSocket is one end of a socket pair of the protocol. The host's are
// non-blocking, in Go's poller: a goroutine that waits on one parks, and no
// thread of sandboxd sits in a system call, where the Go runtime's monitor
// would look every 20 µs whether to take the thread's processor back (a
// third of sandboxd's samples in a run of /bin/true). The init's stay blocking
// (see boxInit.ctl).
type initSocket struct {
	f    *os.File
	conn syscall.RawConn
}

// newInitSocket takes socket fd into the poller when pollable, or leaves
// it blocking.
func newInitSocket(fd int, name string, pollable bool) (*initSocket, error) {
	if pollable {
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("init socket %s: %w", name, err)
		}
	}
	f := os.NewFile(uintptr(fd), name)
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("init socket %s: %w", name, err)
	}
	return &initSocket{f: f, conn: conn}, nil
}

func (s *initSocket) close() error { return s.f.Close() }

// send sends one message, with files passed alongside.
func (s *initSocket) send(m *initMessage, files []*os.File) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode init message: %w", err)
	}
	if len(data) > maxInitMessage {
		return fmt.Errorf("%w: %d bytes, over the %d the init takes", errTooLargeForTheInit, len(data), maxInitMessage)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	waitErr := s.conn.Write(func(fd uintptr) bool {
		err = unix.Sendmsg(int(fd), data, oob, nil, 0)
		return err != unix.EAGAIN
	})
	if waitErr != nil {
		return waitErr
	}
	if err == unix.EMSGSIZE {
		var sndbuf int
		s.conn.Control(func(fd uintptr) { sndbuf, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF) })
		return fmt.Errorf("%w: %d bytes, over the socket's buffer of %d (net.core.wmem_max; sandboxd lacks CAP_NET_ADMIN to raise it)", errTooLargeForTheInit, len(data), sndbuf)
	}
	return err
}

// errTooLargeForTheInit is why a message was not sent: nothing reached the
// init, which is as sound as before.
var errTooLargeForTheInit = errors.New("the message is too large for the box init")

// errNoMessage is recv's answer when its deadline passed first.
var errNoMessage = errors.New("no message from the box init")

// recv waits until deadline (the zero time: for ever; a blocking socket
// takes no other) for the next message and reads it, with any file
// descriptors sent alongside. A message there when the deadline passes is
// read.
func (s *initSocket) recv(buf []byte, deadline time.Time) (*initMessage, []int, error) {
	if !deadline.IsZero() {
		if err := s.f.SetReadDeadline(deadline); err != nil {
			return nil, nil, err
		}
	}
	var m *initMessage
	var fds []int
	var err error
	read := func(fd uintptr) bool {
		m, fds, err = recvInit(int(fd), buf)
		return err != unix.EAGAIN
	}
	waitErr := s.conn.Read(read)
	if errors.Is(waitErr, os.ErrDeadlineExceeded) {
		if waitErr = s.conn.Control(func(fd uintptr) { read(fd) }); waitErr == nil && err == unix.EAGAIN {
			return nil, nil, errNoMessage
		}
	}
	if waitErr != nil {
		return nil, nil, waitErr
	}
	return m, fds, err
}

// recvInit reads one message and any file descriptors sent with it.
func recvInit(sock int, buf []byte) (*initMessage, []int, error) {
	oob := make([]byte, unix.CmsgSpace(4*16)) // 2 accounting fds (v1) and up to 10 pipe ends
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 {
		return nil, nil, fmt.Errorf("init socket closed")
	}
	var fds []int
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, nil, fmt.Errorf("parse control message: %w", err)
		}
		for _, cm := range msgs {
			rights, err := unix.ParseUnixRights(&cm)
			if err == nil {
				fds = append(fds, rights...)
			}
		}
	}
	m := new(initMessage)
	if err := json.Unmarshal(buf[:n], m); err != nil {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, fmt.Errorf("decode init message: %w", err)
	}
	return m, fds, nil
}

func monotonicNs() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}
