package executor

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"golang.org/x/sys/unix"

	"sandboxd/boxfs"
	"sandboxd/spec"
)

// NativeConfig configures the native executor.
type NativeConfig struct {
	// StateDir holds the boxes' directories; one sandboxd instance owns it at a time.
	StateDir string
	// UIDBase is the uid and gid of box 0; box n runs as UIDBase+n.
	UIDBase int
	// Dirs are the host directories shown read-only in a box unless open_box names others.
	Dirs []string
}

// Native is the executor that builds boxes itself.
type Native struct {
	cfg     NativeConfig
	cgroups *Cgroups
	lock    *os.File
	hasNix  bool
	// hasNixDaemon: the host runs a nix daemon, which installs talk to.
	hasNixDaemon bool

	boxes *boxTable[nativeBox]
}

// NewNative takes ownership of the state directory, removes what a previous
// instance left there (mounts, cgroups, box directories) and opens box 0.
func NewNative(cfg NativeConfig) (*Native, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the native executor must run as root")
	}
	stateDir, lock, err := takeStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cfg.StateDir = stateDir
	n := &Native{cfg: cfg, lock: lock, boxes: newBoxTable[nativeBox]()}
	if _, err := os.Stat("/nix/store"); err == nil {
		n.hasNix = true
	}
	if _, err := os.Stat(NixDaemonSocketDir); err == nil {
		n.hasNixDaemon = true
	}
	if err := removeStaleBoxes(filepath.Join(stateDir, "boxes")); err != nil {
		n.Close()
		return nil, err
	}
	sum := sha256.Sum256([]byte(stateDir))
	if n.cgroups, err = NewCgroups("sandboxd-" + hex.EncodeToString(sum[:4])); err != nil {
		n.Close()
		return nil, err
	}
	if _, err := n.boxes.open(DefaultBox, n.startBox(spec.BoxOptions{})); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// takeStateDir creates the state directory with its boxes/ subdirectory and
// locks it for this instance; the lock lasts as long as the returned file.
//
// The path is resolved (symlinks included), as the kernel shows the mounts
// made below it: every comparison with mount points and shown directories
// needs the real path. boxes/ is root's alone: no box user has a reason to
// walk the host path to another box's files.
func takeStateDir(dir string) (abs string, lock *os.File, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create state dir: %w", err)
	}
	if abs, err = filepath.Abs(dir); err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", nil, fmt.Errorf("resolve state dir: %w", err)
	}
	boxes := filepath.Join(abs, "boxes")
	if err := os.MkdirAll(boxes, 0o700); err != nil {
		return "", nil, fmt.Errorf("create state dir: %w", err)
	}
	if err := os.Chmod(boxes, 0o700); err != nil {
		return "", nil, fmt.Errorf("state dir: %w", err)
	}
	if lock, err = tryLock(filepath.Join(abs, "lock")); err != nil {
		return "", nil, fmt.Errorf("state dir %s is in use by another sandboxd: %w", abs, err)
	}
	return abs, lock, nil
}

// tryLock takes an exclusive lock on a file, without waiting. The kernel
// drops it when the file is closed or the process dies.
func tryLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// removeStaleBoxes unmounts and deletes box directories a killed instance left.
func removeStaleBoxes(boxesDir string) error {
	all, err := readMountinfo()
	if err != nil {
		return err
	}
	var mounts []string
	for _, m := range all {
		if strings.HasPrefix(m.point, boxesDir+"/") {
			mounts = append(mounts, m.point)
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts))) // children before parents
	for _, m := range mounts {
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("unmount stale %s: %w", m, err)
		}
	}
	entries, err := os.ReadDir(boxesDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", boxesDir, err)
	}
	for _, e := range entries {
		if err := boxfs.RemoveAll(filepath.Join(boxesDir, e.Name())); err != nil {
			return fmt.Errorf("remove stale box: %w", err)
		}
	}
	return nil
}

// OpenBox creates a box with the lowest free id.
func (n *Native) OpenBox(opts spec.BoxOptions) (int, error) {
	return n.boxes.open(anyBox, n.startBox(opts))
}

// startBox returns the builder of a box with the given options.
func (n *Native) startBox(opts spec.BoxOptions) func(id int) (*nativeBox, error) {
	opts = opts.WithDefaults(n.cfg.Dirs)
	return func(id int) (*nativeBox, error) {
		if err := checkDirsApart(opts.Dirs, n.cfg.StateDir); err != nil {
			return nil, err
		}
		return startBox(n.boxConfig(id, opts), n.cgroups)
	}
}

func (n *Native) boxConfig(id int, opts spec.BoxOptions) boxConfig {
	dir := filepath.Join(n.cfg.StateDir, "boxes", fmt.Sprint(id))
	c := boxConfig{
		id:   id,
		dir:  dir,
		uid:  n.cfg.UIDBase + id,
		opts: opts,
		init: initConfig{
			Root:     filepath.Join(dir, "root"),
			Space:    filepath.Join(dir, "space"),
			Tmp:      filepath.Join(dir, "tmp"),
			Dirs:     opts.Dirs,
			Hostname: "sandbox",
			// See boxAccounting.
			BornInCgroup: n.cgroups.V2,
		},
	}
	if n.hasNix {
		c.init.NixStore = "/nix/store"
	}
	if n.hasNixDaemon {
		c.init.NixDaemon = NixDaemonSocketDir
	}
	return c
}

// CloseBox removes a box. Box 0 stays for the life of the executor.
func (n *Native) CloseBox(id int) error {
	return n.boxes.close(id, (*nativeBox).close)
}

// ResetBox makes the box afresh: new /space and /tmp, a new init.
func (n *Native) ResetBox(id int) error {
	b, err := n.boxes.get(id)
	if err != nil {
		return err
	}
	return b.reset()
}

// Box tells where a box's /space is on the host.
func (n *Native) Box(id int) (spec.BoxInfo, error) {
	b, err := n.boxes.get(id)
	if err != nil {
		return spec.BoxInfo{}, err
	}
	return spec.BoxInfo{SpaceDir: b.init.Space, UID: b.uid, GID: b.uid}, nil
}

// Run runs a program in a box.
func (n *Native) Run(ctx context.Context, id int, req *spec.RunRequest) (spec.RunResult, error) {
	b, err := n.boxes.get(id)
	if err != nil {
		return spec.RunResult{}, err
	}
	return b.run(ctx, req)
}

// Close removes every box and the instance's cgroups, and releases the state dir.
func (n *Native) Close() error {
	var errs []error
	for _, b := range n.boxes.removeAll() {
		errs = append(errs, b.close())
	}
	if n.cgroups != nil {
		errs = append(errs, n.cgroups.Remove())
	}
	if n.lock != nil {
		n.lock.Close()
	}
	return errors.Join(errs...)
}

type boxConfig struct {
	id   int
	dir  string
	uid  int
	opts spec.BoxOptions
	init initConfig
}

// nativeBox is a running box: its init process and the host ends of its sockets.
type nativeBox struct {
	boxConfig
	cgroups *Cgroups
	// initProc is the box's init; nil after a fault stopped it, until the
	// next run starts a new one (the box's files stay).
	initProc *exec.Cmd
	acct     boxAccounting
	// ctl carries run requests and the init's replies; kill carries only
	// kill requests, which the init must hear while it waits for a program.
	ctl, kill int
	buf       []byte
	runs      uint64 // runs started, naming each run to the init
	// mounted: the box's /space and /tmp are mounted on the host.
	mounted bool
	closed  bool
	// mu makes the box's operations one at a time.
	mu sync.Mutex
}

// startBox makes the box's directories and starts it.
func startBox(c boxConfig, cgroups *Cgroups) (_ *nativeBox, err error) {
	b := &nativeBox{boxConfig: c, cgroups: cgroups, ctl: -1, kill: -1, buf: make([]byte, maxInitMessage)}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	for _, d := range []string{c.init.Root, c.init.Space, c.init.Tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create box dir: %w", err)
		}
	}
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// start mounts the box's /space and /tmp on the host (so that judges can
// reach the files) unless they are, and starts its init unless it runs.
func (b *nativeBox) start() error {
	if !b.mounted {
		if err := b.mountDirs(); err != nil {
			return err
		}
	}
	if b.initProc == nil {
		return b.startInit()
	}
	return nil
}

// mountDirs mounts new, empty tmpfs at the box's /space and /tmp.
func (b *nativeBox) mountDirs() error {
	for _, d := range []struct {
		dir  string
		mode string
	}{{b.init.Space, "0755"}, {b.init.Tmp, "1777"}} {
		data := fmt.Sprintf("size=%d,nr_inodes=%d,mode=%s,uid=%d,gid=%d", b.opts.QuotaSpace, b.opts.QuotaInodes, d.mode, b.uid, b.uid)
		if err := unix.Mount("tmpfs", d.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
			b.unmountDirs()
			return fmt.Errorf("mount box tmpfs %s: %w", d.dir, err)
		}
	}
	b.mounted = true
	return nil
}

// unmountDirs detaches the box's /space and /tmp from the host. A tmpfs
// and every file in it go with its last mount, the init's bind.
func (b *nativeBox) unmountDirs() error {
	var errs []error
	for _, d := range []string{b.init.Space, b.init.Tmp} {
		if err := unix.Unmount(d, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", d, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	b.mounted = false
	return nil
}

// startInit starts the box's init, which builds the box's root, and the
// accounting of its runs.
func (b *nativeBox) startInit() (err error) {
	defer func() {
		if err != nil {
			b.stopInit()
		}
	}()
	c := b.boxConfig
	var initEnds []*os.File
	for _, host := range []*int{&b.ctl, &b.kill} {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socketpair: %w", err)
		}
		*host = fds[0]
		initEnd := os.NewFile(uintptr(fds[1]), "box-init")
		defer initEnd.Close()
		initEnds = append(initEnds, initEnd)
	}
	cfgJSON, err := json.Marshal(c.init)
	if err != nil {
		return err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = []string{"sandboxd-box-" + fmt.Sprint(c.id)}
	// The Go runtime would keep the host's CPU cgroup files open in the init
	// for its GOMAXPROCS updates, which the init does not need.
	cmd.Env = []string{boxInitEnv + "=" + string(cfgJSON), "GODEBUG=containermaxprocs=0,updatemaxprocs=0"}
	cmd.ExtraFiles = initEnds // initCtlFD, initKillFD
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		// The box dies with sandboxd, even when sandboxd is killed outright.
		Pdeathsig: syscall.SIGKILL,
		// A session of its own, without the judge's terminal: a terminal's
		// Ctrl-C goes to sandboxd, which shuts down in order, not to the
		// boxes directly, and no box shares the judge's terminal.
		Setsid: true,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start box init: %w", err)
	}
	b.initProc = cmd
	m, err := b.recv(initAnswerTimeout)
	if err != nil {
		return fmt.Errorf("build box: %w", err)
	}
	if m.Op != opReady {
		return fmt.Errorf("build box: %s", m.Error)
	}
	b.acct, err = b.cgroups.NewBox(fmt.Sprintf("box%d", c.id), cmd.Process.Pid)
	return err
}

// stopInit kills the box's init, and with it every process of the box, and
// releases its sockets and accounting.
func (b *nativeBox) stopInit() error {
	if b.initProc != nil && b.initProc.Process != nil {
		b.initProc.Process.Kill()
		b.initProc.Wait()
	}
	b.initProc = nil
	var err error
	if b.acct != nil {
		err = b.acct.Remove()
		b.acct = nil
	}
	for _, fd := range []*int{&b.ctl, &b.kill} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
	return err
}

// initAnswerTimeout bounds the wait for an answer the init gives at once.
const initAnswerTimeout = 30 * time.Second

// errNoMessage is recv's answer when the timeout passed first.
var errNoMessage = errors.New("no message from the box init")

// errInitGone tells that the box's init died.
var errInitGone = errors.New("the box's init is gone")

// recv waits up to timeout for the init's next message. It reads in the
// caller's goroutine: a hand-off through another goroutine costs more than
// a whole small run.
func (b *nativeBox) recv(timeout time.Duration) (*initMessage, error) {
	ts := unix.NsecToTimespec(max(timeout, 0).Nanoseconds())
	fds := []unix.PollFd{{Fd: int32(b.ctl), Events: unix.POLLIN}}
	for {
		n, err := unix.Ppoll(fds, &ts, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("wait for the box init: %w", err)
		}
		if n == 0 {
			return nil, errNoMessage
		}
		m, fds, err := recvInit(b.ctl, b.buf)
		for _, fd := range fds {
			unix.Close(fd)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errInitGone, err)
		}
		return m, nil
	}
}

// close kills the box's init (and with it every process of the box), then
// removes the box's mounts and directories.
func (b *nativeBox) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	errs := []error{b.stopInit(), b.unmountDirs()}
	if errors.Join(errs...) == nil {
		errs = append(errs, boxfs.RemoveAll(b.dir))
	}
	return errors.Join(errs...)
}

// reset makes the box afresh: its init is stopped, with every process of
// the box, and a new one starts on new /space and /tmp. That costs the
// same however many files the box held (the old tmpfs go with their last
// mount), and PIDs, IPC objects and the hostname start over, as in a new box.
func (b *nativeBox) reset() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := errors.Join(b.stopInit(), b.unmountDirs()); err != nil {
		return fmt.Errorf("reset box %d: %w", b.id, err)
	}
	if err := b.start(); err != nil {
		return fmt.Errorf("reset box %d: %w", b.id, err)
	}
	return nil
}

// Check intervals of the limit watch: never sleep longer than the maximum, so
// that a stalled reading is retried and a shutdown is heard; never shorter
// than the minimum, so that the watch does not burn the CPU the program is
// measured on.
const (
	maxCheckInterval = 100 * time.Millisecond
	minCheckInterval = 250 * time.Microsecond
)

func (b *nativeBox) run(ctx context.Context, req *spec.RunRequest) (spec.RunResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return spec.RunResult{}, spec.Errorf(spec.CodeNoSuchBox, "box %d is closed", b.id)
	}
	// After a fault or a failed reset, the box starts again.
	if err := b.start(); err != nil {
		return spec.RunResult{}, fmt.Errorf("restart box %d: %w", b.id, err)
	}
	l := req.Limits
	rl := runLimits{processes: *l.Processes}
	if l.Memory != nil {
		rl.memory = *l.Memory
	}
	cgroupDir, err := b.acct.Begin(rl)
	if err != nil {
		return spec.RunResult{}, fmt.Errorf("run in box %d: %w", b.id, err)
	}
	ended := false
	end := func() (runUsage, error) {
		ended = true
		return b.acct.End()
	}
	defer func() {
		if !ended {
			end()
		}
	}()
	// fault ends a run whose box is in doubt: the init is stopped, and the
	// next run starts a new one.
	fault := func(err error) (spec.RunResult, error) {
		if !ended {
			end()
		}
		b.stopInit()
		return spec.RunResult{}, fmt.Errorf("box %d: %w", b.id, err)
	}
	var files []*os.File
	if cgroupDir != nil {
		defer cgroupDir.Close()
		files = append(files, cgroupDir)
	}
	b.runs++
	msg := &initMessage{
		Op:        opRun,
		Run:       b.runs,
		Argv:      req.Argv,
		Env:       runEnv(req.Env),
		Stdin:     req.Stdin,
		Stdout:    req.Stdout,
		Stderr:    req.Stderr,
		UID:       b.uid,
		GID:       b.uid,
		RLimits:   b.rlimits(req),
		NixStore:  req.NixStore,
		NixDaemon: req.NixDaemon,
	}
	if err := sendInit(b.ctl, msg, files); err != nil {
		return fault(err)
	}
	m, err := b.recvRun(initAnswerTimeout)
	switch {
	case err != nil:
		return fault(err)
	case m.Op == opFailed && m.ExecFailed:
		return spec.RunResult{}, spec.Errorf(spec.CodeExecFailed, "%s", m.Error)
	case m.Op != opStarted:
		return spec.RunResult{}, fmt.Errorf("box %d: %s", b.id, m.Error)
	}
	exited, killedFor, err := b.watch(ctx, l, m.StartNs)
	if errors.Is(err, errInitGone) {
		// On cgroup v1 the init shares the box's memory group: a run can
		// drive the OOM killer to it. That run exceeded its memory limit.
		usage, uerr := end()
		if uerr == nil && usage.oomKills > 0 {
			b.stopInit()
			real := float64(monotonicNs()-m.StartNs) / 1e9
			cpu := usage.cpuTime.Seconds()
			return spec.Decide(l, spec.Outcome{OOMKilled: true, Metrics: spec.Metrics{
				RealTime: real, CPUTime: cpu, IdlenessTime: spec.IdlenessOf(real, cpu), Memory: usage.peakMemory}}), nil
		}
		return fault(err)
	}
	if errors.Is(err, errRunEnded) {
		return spec.RunResult{}, spec.Ended(ctx, "the run was killed")
	}
	if err != nil {
		return fault(err)
	}
	usage, err := end()
	if err != nil {
		return fault(err)
	}
	return spec.Decide(l, outcome(exited, m.StartNs, killedFor, usage)), nil
}

// recvRun waits for the init's next message about the current run; replies
// about an earlier run (one that a fault cut short) are dropped.
func (b *nativeBox) recvRun(timeout time.Duration) (*initMessage, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := b.recv(time.Until(deadline))
		if err != nil || m.Run == b.runs {
			return m, err
		}
	}
}

// rlimits are the per-process limits of a run. CPU time is enforced through
// the cgroup; RLIMIT_CPU only stands behind it in case sandboxd stalls.
func (b *nativeBox) rlimits(req *spec.RunRequest) []rlimitValue {
	l := req.Limits
	// The stack may take as much as the memory limit; a tiny memory limit
	// must end in MemoryLimitExceeded, not in a stack overflow at start.
	stack := uint64(unix.RLIM_INFINITY)
	if l.Memory != nil {
		stack = max(uint64(*l.Memory), 8<<20)
	}
	cpu := uint64(math.Ceil(*l.CPUTime)) + 1
	fsize, nofile := uint64(b.opts.QuotaSpace), uint64(1024)
	if req.FileSize > 0 {
		fsize = uint64(req.FileSize)
	}
	if req.OpenFiles > 0 {
		nofile = uint64(req.OpenFiles)
	}
	return []rlimitValue{
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_CPU, cpu},
		{unix.RLIMIT_FSIZE, fsize},
		{unix.RLIMIT_NOFILE, nofile},
		// Processes are counted per uid, and each box has a uid of its own;
		// this is exact on cgroup v1, where the pids group also holds the init.
		{unix.RLIMIT_NPROC, uint64(*l.Processes)},
		{unix.RLIMIT_STACK, stack},
	}
}

// runEnv is the environment of a run: exactly env when given, else sandboxd's own.
func runEnv(env map[string]string) []string {
	if env == nil {
		return os.Environ()
	}
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// errRunEnded tells that ctx ended the run: the box is sound.
var errRunEnded = errors.New("the run was ended")

// watch enforces the time limits until the init reports the end of the run.
// CPU time is read from the run's cgroup at intervals that shrink as the
// limit nears: CPU time grows at most as fast as wall time times the CPUs
// the run can use, so a check can be put off by (limit - used) / CPUs
// without missing the limit. When ctx ends, the run is killed (errRunEnded).
func (b *nativeBox) watch(ctx context.Context, l spec.Limits, startNs int64) (exited *initMessage, killedFor spec.Limit, err error) {
	cpus := runtime.NumCPU()
	if int64(cpus) > *l.Processes {
		cpus = int(*l.Processes)
	}
	killedFor = spec.NoLimit
	killed := false
	kill := func() {
		sendInit(b.kill, &initMessage{Op: opKill, Run: b.runs}, nil)
		killed = true
	}
	wait := nextCheck(l, 0, 0, cpus)
	for {
		m, err := b.recvRun(wait)
		switch {
		case err == nil && m.Op == opExited:
			if killedFor == spec.NoLimit && ctx.Err() != nil {
				return nil, 0, errRunEnded
			}
			return m, killedFor, nil
		case err == nil:
			continue
		case err != errNoMessage:
			return nil, 0, err
		case killed:
			wait = maxCheckInterval
			continue
		case ctx.Err() != nil:
			kill()
			continue
		}
		used, err := b.acct.CPUTime()
		if err != nil {
			kill()
			return nil, 0, err
		}
		cpu := used.Seconds()
		elapsed := float64(monotonicNs()-startNs) / 1e9
		if killedFor = exceededLimit(l, cpu, elapsed); killedFor != spec.NoLimit {
			kill()
			continue
		}
		wait = nextCheck(l, cpu, elapsed, cpus)
	}
}

// exceededLimit tells which time limit, if any, a run has gone past, in the
// order of verdict priority.
func exceededLimit(l spec.Limits, cpu, elapsed float64) spec.Limit {
	switch {
	case cpu >= *l.CPUTime:
		return spec.LimitCPUTime
	case l.RealTime != nil && elapsed >= *l.RealTime:
		return spec.LimitRealTime
	case l.IdlenessTime != nil && spec.IdlenessOf(elapsed, cpu) >= *l.IdlenessTime:
		return spec.LimitIdlenessTime
	}
	return spec.NoLimit
}

func nextCheck(l spec.Limits, cpu, elapsed float64, cpus int) time.Duration {
	wait := maxCheckInterval.Seconds()
	wait = math.Min(wait, (*l.CPUTime-cpu)/float64(cpus))
	if l.RealTime != nil {
		wait = math.Min(wait, *l.RealTime-elapsed)
	}
	if l.IdlenessTime != nil {
		wait = math.Min(wait, *l.IdlenessTime-spec.IdlenessOf(elapsed, cpu))
	}
	d := time.Duration(wait * float64(time.Second))
	if d < minCheckInterval {
		d = minCheckInterval
	}
	return d
}

// outcome puts together what is known of a finished run.
func outcome(exited *initMessage, startNs int64, killedFor spec.Limit, u runUsage) spec.Outcome {
	real := float64(exited.EndNs-startNs) / 1e9
	cpu := u.cpuTime.Seconds()
	out := spec.Outcome{
		KilledFor: killedFor,
		OOMKilled: u.oomKills > 0,
		Metrics:   spec.Metrics{RealTime: real, CPUTime: cpu, IdlenessTime: spec.IdlenessOf(real, cpu), Memory: u.peakMemory},
	}
	if ws := unix.WaitStatus(exited.WaitStatus); ws.Signaled() {
		out.Signal = int(ws.Signal())
	} else {
		out.ExitCode = ws.ExitStatus()
	}
	return out
}
