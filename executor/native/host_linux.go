// Package native is the executor backend that builds boxes itself from
// Linux namespaces, cgroups and seccomp. Its host side (host, run) drives,
// over a socket pair (initproto), an init in each box: this same binary
// started again (init, root, program, seccomp). It is Linux only.
package native

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
	"golang.org/x/sys/unix"

	"sandboxd/boxfs"
	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Config configures the native executor.
type Config struct {
	// StateDir holds the boxes' directories; one sandboxd instance owns it at a time.
	StateDir string
	// UIDBase is the uid and gid of box 0; box n runs as UIDBase+n.
	UIDBase int
	// Dirs are the host directories shown read-only in a box unless open_box names others.
	Dirs []string
	// Views are the host views a run may ask for; those the host lacks are refused.
	Views []executor.HostView
	// Cgroup decides, on cgroup v2, what sandboxd may move to place its groups.
	Cgroup cgroup.PlaceOptions
	// InitLog, when set, hears every line a box's init writes on its stderr,
	// which only a crash of the init (a panic, a fatal signal) writes.
	InitLog func(box int, line string)
}

// Executor builds boxes itself.
type Executor struct {
	cfg     Config
	cgroups *cgroup.Instance
	lock    *os.File
	uids    *executor.UIDLock
	// views are the views of cfg that the host has.
	views []executor.HostView
	// cpus are the CPUs of --cpus, for runs to take; nil without.
	cpus *executor.CPUPool

	boxes *executor.BoxTable[box]
	// spares prepares boxes ahead of time for open_box and reset_box.
	spares      *spares
	spareSerial int // names the spares' directories
}

// New takes ownership of the state directory, removes what a previous
// instance left there (mounts, cgroups, box directories) and opens box 0.
// Box 0's files are there at once; its init starts in the background, and
// its first run waits for it (and reports why, if it could not start).
func New(cfg Config) (*Executor, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the native executor must run as root")
	}
	stateDir, lock, err := executor.TakeStateDir(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	cfg.StateDir = stateDir
	n := &Executor{cfg: cfg, lock: lock, boxes: executor.NewBoxTable[box]()}
	if n.uids, err = executor.LockUIDs(executor.UIDLockDir, cfg.UIDBase, executor.MaxBoxes, stateDir); err != nil {
		n.Close()
		return nil, err
	}
	for _, v := range cfg.Views {
		if _, err := os.Stat(v.Path); err == nil {
			n.views = append(n.views, v)
		}
	}
	if err := executor.RemoveStaleBoxes(filepath.Join(stateDir, "boxes")); err != nil {
		n.Close()
		return nil, err
	}
	if len(cfg.Cgroup.CPUs) > 0 {
		n.cpus = executor.NewCPUPool(cfg.Cgroup.CPUs)
	}
	sum := sha256.Sum256([]byte(stateDir))
	if n.cgroups, err = cgroup.NewInstance("sandboxd-"+hex.EncodeToString(sum[:4]), cfg.Cgroup); err != nil {
		n.Close()
		return nil, err
	}
	box0Started := make(chan struct{})
	n.spares = startSpares(n.boxConfig(-1, spec.BoxOptions{}.WithDefaults(cfg.Dirs)).init, n.buildSpare, box0Started)
	_, err = n.boxes.Open(executor.DefaultBox, spec.BoxOptions{}, cfg.Dirs, cfg.StateDir, func(id int, opts spec.BoxOptions) (*box, error) {
		b, err := openBoxFiles(n.boxConfig(id, opts), n.cgroups)
		if err == nil {
			// The first spare is built once box 0 is: they would share the CPUs.
			b.startInBackground(func() { close(box0Started) })
		}
		return b, err
	})
	if err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// OpenBox creates a box with the lowest free id.
func (n *Executor) OpenBox(opts spec.BoxOptions) (int, error) {
	return n.boxes.Open(executor.AnyBox, opts, n.cfg.Dirs, n.cfg.StateDir, n.startBox)
}

// startBox builds a box, from a spare when one fits.
func (n *Executor) startBox(id int, opts spec.BoxOptions) (*box, error) {
	c := n.boxConfig(id, opts)
	if !n.spares.fits(c) {
		return startBox(c, n.cgroups)
	}
	spare, err := n.spares.take()
	if err != nil {
		return nil, err
	}
	b := newBox(c, n.cgroups)
	if err := b.adoptSpare(spare); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// boxConfig is the configuration of box id.
func (n *Executor) boxConfig(id int, opts spec.BoxOptions) boxConfig {
	return n.boxConfigAt(id, filepath.Join(n.cfg.StateDir, "boxes", strconv.Itoa(id)), n.cfg.UIDBase+id, opts)
}

func (n *Executor) boxConfigAt(id int, dir string, uid int, opts spec.BoxOptions) boxConfig {
	c := boxConfig{
		id:      id,
		dir:     dir,
		uid:     uid,
		opts:    opts,
		initLog: n.cfg.InitLog,
		cpuPool: n.cpus,
		init: initConfig{
			Root:     filepath.Join(dir, "root"),
			Space:    filepath.Join(dir, "space"),
			Tmp:      filepath.Join(dir, "tmp"),
			Dirs:     opts.Dirs,
			Hostname: "sandbox",
			Loopback: opts.Network == spec.NetworkLoopback,
			Views:    n.views,
			// See cgroup.Box.
			BornInCgroup: n.cgroups.V2,
		},
	}
	return c
}

// CloseBox removes a box. Box 0 stays for the life of the executor.
func (n *Executor) CloseBox(id int) error {
	return n.boxes.Close(id, (*box).close)
}

// ResetBox makes the box afresh: new /space and /tmp, a new init.
func (n *Executor) ResetBox(id int) error {
	b, err := n.boxes.Get(id)
	if err != nil {
		return err
	}
	return b.reset(n.spares)
}

// Box tells where a box's /space is on the host.
func (n *Executor) Box(id int) (spec.BoxInfo, error) {
	b, err := n.boxes.Get(id)
	if err != nil {
		return spec.BoxInfo{}, err
	}
	return spec.BoxInfo{SpaceDir: b.init.Space, UID: b.uid, GID: b.uid, QuotaSpace: b.opts.QuotaSpace}, nil
}

// Run runs a job in a box.
func (n *Executor) Run(ctx context.Context, id int, job *executor.Job) (spec.RunResult, error) {
	b, err := n.boxes.Get(id)
	if err != nil {
		return spec.RunResult{}, err
	}
	return b.run(ctx, job)
}

// Close removes every box and the instance's cgroups, and releases the state dir.
func (n *Executor) Close() error {
	var errs []error
	if n.spares != nil {
		n.spares.stop()
	}
	for _, b := range n.boxes.RemoveAll() {
		errs = append(errs, b.close())
	}
	if n.cgroups != nil {
		errs = append(errs, n.cgroups.Remove())
	}
	if n.uids != nil {
		n.uids.Release()
	}
	if n.lock != nil {
		n.lock.Close()
	}
	return errors.Join(errs...)
}

type boxConfig struct {
	id      int
	dir     string
	uid     int
	opts    spec.BoxOptions
	init    initConfig
	initLog func(box int, line string)
	cpuPool *executor.CPUPool // nil: runs are not pinned
}

// box is a running box: its init process and the host ends of its sockets.
type box struct {
	boxConfig
	cgroups *cgroup.Instance
	// initProc is the box's init; nil after a fault stopped it, until the
	// next run starts a new one (the box's files stay).
	initProc *exec.Cmd
	// initSaid is what the current init wrote on its stderr.
	initSaid *initStderr
	acct     cgroup.Box
	// preparing tells the end of the next run's preparation (prepareNext),
	// which the box's next operation waits for; nil when none is under way.
	preparing chan error
	// ctl carries run requests and the init's replies; kill carries the
	// requests the init must hear while it waits for a program, and the
	// answers to opWhenStarted (one at a time: startQuery). nil while
	// there is no init.
	ctl, kill  *initSocket
	startQuery sync.Mutex
	buf        []byte
	runs       uint64 // runs started, naming each run to the init
	// cpus are the CPUs of the run being begun, when runs are pinned.
	cpus []int
	// mounted: the box's /space and /tmp are mounted on the host.
	mounted bool
	closed  bool
	// mu makes the box's operations one at a time.
	mu sync.Mutex
}

func newBox(c boxConfig, cgroups *cgroup.Instance) *box {
	return &box{boxConfig: c, cgroups: cgroups, buf: make([]byte, maxInitMessage)}
}

// startBox makes the box's directories and starts it.
func startBox(c boxConfig, cgroups *cgroup.Instance) (_ *box, err error) {
	b := newBox(c, cgroups)
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	if err := b.start(); err != nil {
		return nil, err
	}
	return b, nil
}

// openBoxFiles makes the box's directories and mounts its /space and /tmp,
// without an init: file requests work at once, and its first run starts it.
func openBoxFiles(c boxConfig, cgroups *cgroup.Instance) (*box, error) {
	b := newBox(c, cgroups)
	if err := b.mountDirs(); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// startInBackground starts the box's init (as its first run would) without
// holding up the caller, then calls done. A run waits for it, holding the
// box; if it failed, the run starts the init again and reports why.
func (b *box) startInBackground(done func()) {
	go func() {
		defer done()
		b.mu.Lock()
		defer b.mu.Unlock()
		if !b.closed {
			b.start()
		}
	}()
}

// start mounts the box's /space and /tmp on the host (so that judges can
// reach the files) unless they are, and starts its init unless it runs.
func (b *box) start() error {
	if !b.mounted {
		if err := b.mountDirs(); err != nil {
			return err
		}
	}
	if b.initProc == nil {
		if err := b.spawnInit(); err != nil {
			return err
		}
		return b.attach()
	}
	return nil
}

// boxDirs are the box's /space and /tmp on the host, with their modes.
func (b *box) boxDirs() []struct{ dir, mode string } {
	return []struct{ dir, mode string }{{b.init.Space, "0755"}, {b.init.Tmp, "1777"}}
}

// mountDirs makes the box's directories and mounts new, empty tmpfs at its
// /space and /tmp, owned by the box's user. The owner is set apart from the
// mount, as adoptSpare sets it on a spare's: every box shows the same mount options.
func (b *box) mountDirs() error {
	for _, d := range []string{b.init.Root, b.init.Space, b.init.Tmp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create box dir: %w", err)
		}
	}
	for _, d := range b.boxDirs() {
		data := fmt.Sprintf("size=%d,nr_inodes=%d,mode=%s", b.opts.QuotaSpace, b.opts.QuotaInodes, d.mode)
		if err := unix.Mount("tmpfs", d.dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
			b.unmountDirs()
			return fmt.Errorf("mount box tmpfs %s: %w", d.dir, err)
		}
	}
	b.mounted = true
	return b.ownDirs()
}

// ownDirs gives the box's /space and /tmp to the box's user.
func (b *box) ownDirs() error {
	for _, d := range b.boxDirs() {
		if err := os.Lchown(d.dir, b.uid, b.uid); err != nil {
			return fmt.Errorf("box dir owner: %w", err)
		}
	}
	return nil
}

// unmountDirs detaches the box's /space and /tmp from the host. A tmpfs
// and every file in it go with its last mount, the init's bind.
func (b *box) unmountDirs() error {
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

// spawnInit starts the box's init and waits until it has built the box's root.
func (b *box) spawnInit() (err error) {
	defer func() {
		if err != nil {
			err = b.initFailed(err)
		}
	}()
	c := b.boxConfig
	var initEnds []*os.File
	for _, host := range []**initSocket{&b.ctl, &b.kill} {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socketpair: %w", err)
		}
		// A packet must fit its sender's buffer, 208 KiB by default, and a
		// run's argv and env may take up to maxInitMessage. Without
		// CAP_NET_ADMIN the buffer stays within net.core.wmem_max, and a
		// larger run is refused (errTooLargeForTheInit).
		if unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, maxInitMessage) != nil {
			unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_SNDBUF, maxInitMessage)
		}
		initEnd := os.NewFile(uintptr(fds[1]), "box-init")
		if *host, err = newInitSocket(fds[0], "box-init", true); err != nil {
			initEnd.Close()
			return err
		}
		defer initEnd.Close()
		initEnds = append(initEnds, initEnd)
	}
	cfgJSON, err := json.Marshal(c.init)
	if err != nil {
		return err
	}
	cmd := exec.Command("/proc/self/exe")
	// One name for every box's init, a spare's included: a program that
	// reads /proc/1/cmdline learns nothing of its box.
	cmd.Args = []string{"sandboxd-box"}
	// The Go runtime would keep the host's CPU cgroup files open in the init
	// for its GOMAXPROCS updates, which the init does not need.
	cmd.Env = []string{boxInitEnv + "=" + string(cfgJSON), "GODEBUG=containermaxprocs=0,updatemaxprocs=0"}
	cmd.ExtraFiles = initEnds // initCtlFD, initKillFD
	b.initSaid = &initStderr{box: c.id, log: b.initLog}
	cmd.Stderr = b.initSaid
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
	return nil
}

// attach starts the accounting of the box's runs, for the box's init.
func (b *box) attach() error {
	acct, err := b.cgroups.NewBox("box"+strconv.Itoa(b.id), b.initProc.Process.Pid)
	if err != nil {
		return b.initFailed(err)
	}
	b.acct = acct
	b.prepareNext()
	return nil
}

// prepareNext readies the accounting of the box's next run in the
// background, off any run's path: its cgroup (v2) or memory group (v1),
// made while the current run goes on. The box's next operation waits for
// it (awaitNext).
func (b *box) prepareNext() {
	done := make(chan error, 1)
	b.preparing = done
	acct := b.acct
	go func() { done <- acct.Prepare() }()
}

// awaitNext waits for the preparation of the next run, if one is under way.
func (b *box) awaitNext() error {
	if b.preparing == nil {
		return nil
	}
	err := <-b.preparing
	b.preparing = nil
	if err != nil {
		return fmt.Errorf("prepare the run: %w", err)
	}
	return nil
}

// initFailed stops the box's init after err, and names in err what the init
// said on its stderr, if anything: a crash of the init is told nowhere else.
func (b *box) initFailed(err error) error {
	b.stopInit()
	if said := b.initSaid.first(); said != "" {
		return fmt.Errorf("%w (the box's init said: %s)", err, said)
	}
	return err
}

// initStderr takes a box init's stderr: each line goes to the log, and the
// first, which names the cause of a crash ("panic: ...", "fatal error: ...",
// "SIGABRT: abort"), is kept for the error reply.
type initStderr struct {
	log func(box int, line string)

	mu      sync.Mutex
	box     int    // -1 while the init is a spare's
	partial []byte // a line not ended yet
	said    string // the first line
}

// maxInitSaid bounds the first line as an error reply names it.
const maxInitSaid = 200

func (w *initStderr) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		line, rest, ok := bytes.Cut(w.partial, []byte("\n"))
		if !ok {
			break
		}
		w.partial = rest
		w.line(string(line))
	}
	if len(w.partial) > maxInitMessage { // a line without end: told as it is
		w.line(string(w.partial))
		w.partial = nil
	}
	return len(p), nil
}

// setBox names the box the init is now.
func (w *initStderr) setBox(id int) {
	w.mu.Lock()
	w.box = id
	w.mu.Unlock()
}

func (w *initStderr) line(l string) {
	if w.said == "" && strings.TrimSpace(l) != "" {
		w.said = strings.ToValidUTF8(l[:min(len(l), maxInitSaid)], "?")
	}
	if w.log != nil {
		w.log(w.box, l)
	}
}

// first is the first line the init wrote, once it is gone; "" for none.
func (w *initStderr) first() string {
	if w == nil {
		return ""
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.line(string(w.partial))
		w.partial = nil
	}
	return w.said
}

// stopInit kills the box's init, and with it every process of the box, and
// releases its sockets and accounting.
func (b *box) stopInit() error {
	b.awaitNext() // its socket and accounting go below
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
	for _, s := range []**initSocket{&b.ctl, &b.kill} {
		if *s != nil {
			(*s).close()
			*s = nil
		}
	}
	return err
}

// initAnswerTimeout bounds the wait for an answer the init gives at once.
const initAnswerTimeout = 30 * time.Second

// errInitGone tells that the box's init died.
var errInitGone = errors.New("the box's init is gone")

// recv waits up to timeout for the init's next message (errNoMessage when
// none came). It reads in the caller's goroutine: a hand-off through
// another goroutine costs more than a whole small run.
func (b *box) recv(timeout time.Duration) (*initMessage, error) {
	m, fds, err := b.ctl.recv(b.buf, time.Now().Add(timeout))
	for _, fd := range fds {
		unix.Close(fd)
	}
	switch {
	case err == errNoMessage:
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: %v", errInitGone, err)
	}
	return m, nil
}

// whenStarted asks the init when the program of run started, and what the
// CPU counter then held of the init's own work (cgroup v1): startNs 0 if it
// has not started, or has ended.
func (b *box) whenStarted(run uint64) (startNs int64, initCPU time.Duration, err error) {
	b.startQuery.Lock()
	defer b.startQuery.Unlock()
	if err := b.kill.send(&initMessage{Op: opWhenStarted, Run: run}, nil); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errInitGone, err)
	}
	deadline := time.Now().Add(initAnswerTimeout)
	buf := make([]byte, 4096)
	for {
		m, fds, err := b.kill.recv(buf, deadline)
		for _, fd := range fds {
			unix.Close(fd)
		}
		switch {
		case err == errNoMessage:
			return 0, 0, fmt.Errorf("the box init did not say when run %d started", run)
		case err != nil:
			return 0, 0, fmt.Errorf("%w: %v", errInitGone, err)
		case m.Op == opStarted && m.Run == run:
			return m.StartNs, time.Duration(m.InitCPUNs), nil
		}
	}
}

// close kills the box's init (and with it every process of the box), then
// removes the box's mounts and directories.
func (b *box) close() error {
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
// the box, and a new one, a spare's when one fits, takes over on new
// /space and /tmp. That costs the same however many files the box held
// (the old tmpfs go with their last mount), and PIDs, IPC objects and the
// hostname start over, as in a new box.
//
// The old init is killed first and waited for last, before its accounting
// goes: it dies, with the box's processes, while the box's new files and
// init are readied.
func (b *box) reset(spares *spares) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.initProc != nil && b.initProc.Process != nil {
		b.initProc.Process.Kill()
	}
	fits := spares.fits(b.boxConfig)
	var spare *box
	err := b.unmountDirs()
	if err == nil && fits {
		if err = b.removeDir(); err == nil {
			spare, err = spares.take()
		}
	}
	if err = errors.Join(err, b.stopInit()); err == nil {
		if fits {
			err = b.adoptSpare(spare)
		} else {
			err = b.start()
		}
	} else if spare != nil {
		spare.close()
	}
	if err != nil {
		return fmt.Errorf("reset box %d: %w", b.id, err)
	}
	return nil
}
