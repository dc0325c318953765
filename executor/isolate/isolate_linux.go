// Package isolate is the executor backend that drives an installed
// ioi/isolate through its command line: one isolate box per sandboxd box, its
// meta file read back as the run's verdict. It is Linux only.
package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"sandboxd/boxfs"
	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Config configures the isolate executor.
type Config struct {
	// Path is the isolate binary: a path, or a name looked up on PATH ("isolate" when empty).
	Path string
	// StateDir holds each box's /space, /tmp and meta file; one sandboxd instance owns it at a time.
	StateDir string
	// FirstUID must be isolate's first_uid and first_gid: isolate box i runs as FirstUID+i.
	FirstUID int
	// FirstBox is the lowest isolate box id sandboxd takes; lower ones are
	// left to other users of isolate (or of the uids) on the host.
	FirstBox int
	// Dirs are the host directories shown read-only in a box unless open_box names others.
	Dirs []string
	// LockDir holds a lock file per isolate box id, shared by every sandboxd of
	// the host so that two instances never take the same isolate box.
	LockDir string
}

// DefaultLockDir is the LockDir when none is configured.
const DefaultLockDir = "/run/sandboxd-isolate"

// defaultDirs are the host directories isolate shows in a box by default.
var defaultDirs = []string{"/bin", "/lib", "/lib64", "/usr"}

// Executor drives an installed ioi/isolate. Each sandboxd
// box is one isolate box; its /space and /tmp are directories of the state
// dir that isolate binds into the box, not isolate's own box directory: the
// only way to reset the cgroup isolate keeps per box is --cleanup, which
// deletes that directory (see box.stale).
type Executor struct {
	cfg Config
	// cg tells whether isolate can use the host's cgroups: 1.x drives cgroup
	// v1 hierarchies, 2.x the unified v2 one.
	cg bool
	// peakResets: isolate 1.x resets the cgroup's peak memory when it sets a
	// memory limit; 2.x does not (cgroup v2's memory.peak cannot be reset).
	peakResets bool
	lock       *os.File
	uids       *executor.UIDLock

	boxes   *executor.BoxTable[box]
	mu      sync.Mutex
	isoUsed map[int]bool // isolate box ids taken by this instance
}

type box struct {
	id, isoID int
	uid       int
	dir       string // the box's directory in the state dir
	space     string // host directory shown as /space
	tmp       string // host directory shown as /tmp
	meta      string
	dirs      []string
	dirArgs   []string // the --dir options of every run
	quota     int64    // bytes, the largest file a run may write
	idLock    *os.File

	mu     sync.Mutex
	closed bool
	// stale tells that the isolate box's cgroup holds figures of an earlier
	// run that isolate does not reset: its OOM-kill count never goes back to
	// 0, and 2.x keeps the peak memory. The box is made afresh (--cleanup,
	// --init, about 3 ms) before the next run, rather than before every run.
	stale bool
}

// idFile records, in a box's directory, the isolate box it uses, so
// that the next start can clean up what a killed instance left.
const idFile = "isolate-box"

// New finds isolate and its version, takes ownership of the state
// directory, cleans up what a killed instance left there, and opens box 0.
func New(cfg Config) (*Executor, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the isolate executor must run as root")
	}
	if cfg.Path == "" {
		cfg.Path = "isolate"
	}
	path, err := exec.LookPath(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("find isolate: %w", err)
	}
	cfg.Path = path
	if cfg.LockDir == "" {
		cfg.LockDir = DefaultLockDir
	}
	if err := os.MkdirAll(cfg.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("create isolate lock dir: %w", err)
	}
	if err := executor.CheckOwnDir("isolate lock dir", cfg.LockDir); err != nil {
		return nil, err
	}
	major, err := majorVersion(path)
	if err != nil {
		return nil, err
	}
	cg := usesHostCgroups(major)
	if cg && major >= 2 {
		if _, err := cgroupRoot(path); err != nil {
			return nil, err
		}
	}
	x := &Executor{
		cfg:        cfg,
		cg:         cg,
		peakResets: major < 2,
		boxes:      executor.NewBoxTable[box](),
		isoUsed:    map[int]bool{},
	}
	if x.cfg.StateDir, x.lock, err = executor.TakeStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	// isolate box i runs as FirstUID+i.
	if x.uids, err = executor.LockUIDs(executor.UIDLockDir, cfg.FirstUID+cfg.FirstBox, executor.MaxBoxes, x.cfg.StateDir); err != nil {
		x.Close()
		return nil, err
	}
	if err := x.removeStaleBoxes(); err != nil {
		x.Close()
		return nil, err
	}
	if _, err := x.boxes.Open(executor.DefaultBox, spec.BoxOptions{}, x.cfg.Dirs, x.cfg.StateDir, x.newBox); err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

// majorVersion reads the first line of `isolate --version`, "The
// process isolator 1.10.1".
func majorVersion(path string) (int, error) {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %w", path, err)
	}
	version, ok := strings.CutPrefix(firstLine(string(out)), "The process isolator ")
	if !ok {
		return 0, fmt.Errorf("%s does not look like isolate: --version says %q", path, firstLine(string(out)))
	}
	major, err := strconv.Atoi(strings.SplitN(version, ".", 2)[0])
	if err != nil {
		return 0, fmt.Errorf("isolate version %q: %w", version, err)
	}
	return major, nil
}

// usesHostCgroups tells whether isolate of a major version can use
// the host's cgroups: 1.x drives cgroup v1 hierarchies, 2.x the unified one.
func usesHostCgroups(major int) bool {
	hostV2, _, err := cgroup.Detect()
	return err == nil && (major >= 2) == hostV2
}

// cgroupRoot finds the cgroup isolate 2.x makes its boxes' groups in (its
// cg_root) and checks that it gives them the memory controller: isolate
// limits and measures memory there, and without it a --run fails (status XX)
// though --init works. It says what to set.
func cgroupRoot(path string) (string, error) {
	cmd := exec.Command(path, "--print-cg-root")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("isolate --print-cg-root: %v: %s (isolate 2.x needs a cgroup of its own, its cg_root: isolate.service makes one with isolate-cg-keeper; see isolate's README)", err, strings.TrimSpace(stderr.String()))
	}
	root := strings.TrimSpace(string(out))
	data, err := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	if err != nil {
		return "", fmt.Errorf("isolate's cgroup root %s: %w", root, err)
	}
	if !slices.Contains(strings.Fields(string(data)), "memory") {
		return "", fmt.Errorf("isolate's cgroup root %s does not give its boxes the memory controller (its cgroup.subtree_control holds %q): write +memory there, once its parent's cgroup.subtree_control has it too, or let isolate-cg-keeper (isolate.service) make the cgroup", root, strings.TrimSpace(string(data)))
	}
	return root, nil
}

// removeStaleBoxes cleans up the isolate boxes a killed instance used (unless
// another instance has taken them since), then removes their directories.
func (x *Executor) removeStaleBoxes() error {
	boxesDir := filepath.Join(x.cfg.StateDir, "boxes")
	entries, err := os.ReadDir(boxesDir)
	if err != nil {
		return fmt.Errorf("read %s: %w", boxesDir, err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(boxesDir, e.Name(), idFile))
		if err != nil {
			continue
		}
		isoID, err := strconv.Atoi(string(data))
		if err != nil {
			continue
		}
		lock, err := executor.TryLock(x.lockPath(isoID))
		if err != nil {
			continue
		}
		_, err = x.isolate(isoID, "--cleanup")
		lock.Close()
		if err != nil {
			return fmt.Errorf("clean up stale isolate box %d: %w", isoID, err)
		}
	}
	return executor.RemoveStaleBoxes(boxesDir)
}

func (x *Executor) lockPath(isoID int) string {
	return filepath.Join(x.cfg.LockDir, strconv.Itoa(isoID))
}

// isolate runs an isolate command on one of its boxes and returns its output.
func (x *Executor) isolate(isoID int, args ...string) (string, error) {
	cmd := exec.Command(x.cfg.Path, append(x.boxArgs(isoID), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("isolate %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

func (x *Executor) boxArgs(isoID int) []string {
	args := []string{"--box-id=" + strconv.Itoa(isoID)}
	if x.cg {
		return append([]string{"--cg"}, args...)
	}
	return args
}

// initBox makes an isolate box. A box left by a killed instance makes --init
// fail; it is made afresh.
func (x *Executor) initBox(isoID int) error {
	if _, err := x.isolate(isoID, "--init"); err == nil {
		return nil
	}
	return x.renewBox(isoID)
}

// renewBox deletes an isolate box, with its cgroup, and makes it again.
func (x *Executor) renewBox(isoID int) error {
	if _, err := x.isolate(isoID, "--cleanup"); err != nil {
		return err
	}
	_, err := x.isolate(isoID, "--init")
	return err
}

// OpenBox creates a box with the lowest free id.
func (x *Executor) OpenBox(opts spec.BoxOptions) (int, error) {
	return x.boxes.Open(executor.AnyBox, opts, x.cfg.Dirs, x.cfg.StateDir, x.newBox)
}

// takeID reserves the lowest isolate box id that neither this nor
// another sandboxd holds.
func (x *Executor) takeID() (int, *os.File, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	var lock *os.File
	isoID := executor.LowestFree(x.cfg.FirstBox, x.cfg.FirstBox+executor.MaxBoxes, func(i int) bool {
		if x.isoUsed[i] {
			return true
		}
		var err error
		lock, err = executor.TryLock(x.lockPath(i))
		return err != nil
	})
	if isoID < 0 {
		return 0, nil, spec.Errorf(spec.CodeTooManyBoxes, "every isolate box id from %d to %d is taken", x.cfg.FirstBox, x.cfg.FirstBox+executor.MaxBoxes-1)
	}
	x.isoUsed[isoID] = true
	return isoID, lock, nil
}

func (x *Executor) releaseID(isoID int, lock *os.File) {
	lock.Close()
	x.mu.Lock()
	delete(x.isoUsed, isoID)
	x.mu.Unlock()
}

func (x *Executor) newBox(id int, opts spec.BoxOptions) (b *box, err error) {
	if opts.Network != "" {
		// isolate's one network option, --share-net, is the host's network.
		return nil, spec.Errorf(spec.CodeUnsupported, "network %s: isolate has no network of a box's own", spec.Quote(opts.Network))
	}
	isoID, lock, err := x.takeID()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(x.cfg.StateDir, "boxes", strconv.Itoa(id))
	b = &box{
		id:     id,
		isoID:  isoID,
		uid:    x.cfg.FirstUID + isoID,
		dir:    dir,
		space:  filepath.Join(dir, "space"),
		tmp:    filepath.Join(dir, "tmp"),
		meta:   filepath.Join(dir, "meta"),
		dirs:   opts.Dirs,
		quota:  opts.QuotaSpace,
		idLock: lock,
	}
	b.dirArgs = b.dirOptions()
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
			x.releaseID(isoID, lock)
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create box dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, idFile), []byte(strconv.Itoa(isoID)), 0o644); err != nil {
		return nil, fmt.Errorf("record isolate box id: %w", err)
	}
	if err := b.makeDirs(); err != nil {
		return nil, err
	}
	if err := x.initBox(isoID); err != nil {
		return nil, err
	}
	return b, nil
}

// makeDirs makes the box's /space and /tmp, owned by the box user, as the
// native backend's tmpfs mounts are.
func (b *box) makeDirs() error {
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{b.space, 0o755}, {b.tmp, 0o777 | os.ModeSticky}} {
		if err := os.Mkdir(d.path, 0o700); err != nil {
			return fmt.Errorf("create box dir: %w", err)
		}
		if err := os.Chown(d.path, b.uid, b.uid); err != nil {
			return fmt.Errorf("chown box dir: %w", err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("chmod box dir: %w", err)
		}
	}
	return nil
}

// dirOptions shows /space and /tmp from the box's directories, the
// box's read-only host directories in place of isolate's defaults, and the
// host's /dev with its device nodes only. isolate binds a directory with the
// mounts below it but makes only the top one read-only: a tmpfs below a
// shown directory, and the host's /dev/shm below isolate 1.x's /dev, would
// be writable. So each is bound without them (norec); /dev/shm is the box's
// /tmp, as in the native backend. A shown directory the host lacks is
// skipped (maybe), as the native backend skips it.
func (b *box) dirOptions() []string {
	args := []string{"--dir=" + spec.SpaceDir + "=" + b.space + ":rw", "--dir=/tmp=" + b.tmp + ":rw",
		"--dir=/dev:dev:norec", "--dir=/dev/shm=" + b.tmp + ":rw"}
	for _, d := range defaultDirs {
		if !slices.Contains(b.dirs, d) {
			args = append(args, "--dir="+d+"=") // removes isolate's rule
		}
	}
	for _, d := range b.dirs {
		args = append(args, "--dir="+d+":norec:maybe")
	}
	return args
}

// CloseBox removes a box. Box 0 stays for the life of the executor.
func (x *Executor) CloseBox(id int) error {
	return x.boxes.Close(id, x.closeBox)
}

func (x *Executor) closeBox(b *box) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	if _, err := x.isolate(b.isoID, "--cleanup"); err != nil {
		return fmt.Errorf("close box %d: %w", b.id, err)
	}
	if err := boxfs.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("close box %d: %w", b.id, err)
	}
	x.releaseID(b.isoID, b.idLock)
	return nil
}

// ResetBox gives the box new, empty /space and /tmp.
func (x *Executor) ResetBox(id int) error {
	b, err := x.boxes.Get(id)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, d := range []string{b.space, b.tmp} {
		if err := boxfs.RemoveAll(d); err != nil {
			return fmt.Errorf("reset box %d: %w", id, err)
		}
	}
	if err := b.makeDirs(); err != nil {
		return fmt.Errorf("reset box %d: %w", id, err)
	}
	return nil
}

// Box tells where a box's /space is on the host.
func (x *Executor) Box(id int) (spec.BoxInfo, error) {
	b, err := x.boxes.Get(id)
	if err != nil {
		return spec.BoxInfo{}, err
	}
	return spec.BoxInfo{SpaceDir: b.space, UID: b.uid, GID: b.uid, QuotaSpace: b.quota}, nil
}

// Close removes every box and releases the state dir.
func (x *Executor) Close() error {
	var errs []error
	for _, b := range x.boxes.RemoveAll() {
		errs = append(errs, x.closeBox(b))
	}
	if x.uids != nil {
		x.uids.Release()
	}
	if x.lock != nil {
		x.lock.Close()
	}
	return errors.Join(errs...)
}

// Run runs a program in a box with isolate --run.
func (x *Executor) Run(ctx context.Context, id int, job *executor.Job) (spec.RunResult, error) {
	b, err := x.boxes.Get(id)
	if err != nil {
		return spec.RunResult{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := x.prepare(ctx, b, job, nil)
	if err != nil {
		return spec.RunResult{}, err
	}
	runErr := r.cmd.Run()
	if ctx.Err() != nil {
		return spec.RunResult{}, spec.Ended(ctx, "the run was killed")
	}
	res, err := x.finish(r, runErr, spec.NoLimit)
	var over *executor.StartOverMemory
	if errors.As(err, &over) {
		return over.Result, nil
	}
	return res, err
}

// isolateRun is one isolate --run, prepared in its box (held locked).
type isolateRun struct {
	b      *box
	job    *executor.Job
	cmd    *exec.Cmd
	stderr *bytes.Buffer // isolate's own messages; nil when fd 2 is a pipe of a group
}

// prepare makes the isolate command of a job in box b (locked), not yet
// started: it renews a stale box and finds the program. fds are the pipe
// ends of a group that the program gets at those descriptors (nil for a run
// alone): isolate hands them on with --inherit-fds, which keeps every
// descriptor isolate was started with, and sandboxd starts it with those and
// 0-2 only (isolate closes its meta file, lock and pipes before the program
// starts).
func (x *Executor) prepare(ctx context.Context, b *box, job *executor.Job, fds map[int]*os.File) (*isolateRun, error) {
	if b.closed {
		return nil, spec.Errorf(spec.CodeNoSuchBox, "box %d is closed", b.id)
	}
	if b.stale {
		if err := x.renewBox(b.isoID); err != nil {
			return nil, fmt.Errorf("renew box %d: %w", b.id, err)
		}
		b.stale = false
	}
	// isolate execs argv[0] as it is; a program that cannot be executed
	// would come back as exit code 127, indistinguishable from a program's own.
	exe, err := executor.LookPath(job.Argv[0], job.Path, func(p string) bool { return b.isExecutable(p, job.Views) })
	if err == nil && !b.isExecutable(exe, job.Views) {
		err = fmt.Errorf("%s is not an executable file in the box", spec.Quote(exe))
	}
	if err != nil {
		return nil, spec.Errorf(spec.CodeExecFailed, "%v", err)
	}
	if err := os.Remove(b.meta); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("run in box %d: %w", b.id, err)
	}
	cmd := exec.CommandContext(ctx, x.cfg.Path, x.runArgs(b, job, exe, fds)...)
	// --full-env passes isolate's own environment: unlike -E VAR=value, it
	// keeps variables whose value is empty.
	cmd.Env = job.Env
	r := &isolateRun{b: b, job: job, cmd: cmd}
	if f := fds[0]; f != nil {
		cmd.Stdin = f
	}
	if f := fds[1]; f != nil {
		cmd.Stdout = f
	}
	if f := fds[2]; f != nil {
		cmd.Stderr = f // isolate's own messages, if any, go there too
	} else {
		r.stderr = new(bytes.Buffer)
		cmd.Stderr = r.stderr
	}
	for fd := 3; fd <= spec.MaxPipedFD; fd++ {
		if f := fds[fd]; f != nil {
			for len(cmd.ExtraFiles) < fd-3 {
				cmd.ExtraFiles = append(cmd.ExtraFiles, nil) // closed
			}
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
	}
	// isolate kills the box and exits on SIGTERM: when the run is cancelled,
	// and when sandboxd dies, so that no program outlives it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return r, nil
}

// finish reads the meta file of an isolate run that has ended (runErr is
// what its Wait returned) and decides its verdict; killedFor is the limit
// sandboxd ended it for, if any.
func (x *Executor) finish(r *isolateRun, runErr error, killedFor spec.Limit) (spec.RunResult, error) {
	b := r.b
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return spec.RunResult{}, fmt.Errorf("run isolate: %w", runErr)
	}
	data, err := os.ReadFile(b.meta)
	if err != nil && exitErr != nil {
		// isolate failed before it opened the meta file (a bad option, say).
		msg := exitErr.Error()
		if r.stderr != nil {
			msg = strings.TrimSpace(r.stderr.String())
		}
		return spec.RunResult{}, failed(msg)
	}
	if err != nil {
		return spec.RunResult{}, fmt.Errorf("run in box %d: %w", b.id, err)
	}
	m, err := parseMeta(data)
	if err != nil {
		return spec.RunResult{}, fmt.Errorf("run in box %d: %w", b.id, err)
	}
	if m.Status == "XX" && limitBelowStart(m.Message) {
		// isolate tells no figure: the group held more than the limit it was given.
		limit := kilobytes(*r.job.Limits.Memory) << 10
		return spec.RunResult{}, &executor.StartOverMemory{
			Result: spec.Decide(r.job.Limits, spec.Outcome{KilledFor: spec.LimitMemory, Metrics: spec.Metrics{Memory: limit}}),
			Err: spec.Errorf(spec.CodeExecFailed, "%s could not be started within its memory_limit of %d bytes (isolate: %s)",
				spec.Quote(r.job.Argv[0]), *r.job.Limits.Memory, strings.ReplaceAll(m.Message, "\n", "")),
		}
	}
	if m.Status == "XX" {
		return spec.RunResult{}, failed(m.Message)
	}
	b.stale = x.cg && (m.OOMKilled || !x.peakResets)
	o := m.outcome(r.job.Limits)
	if killedFor != spec.NoLimit {
		o.KilledFor = killedFor
	}
	return spec.Decide(r.job.Limits, o), nil
}

// runArgs is the isolate command line of a run, whose descriptors in fds
// (a group's pipes) are isolate's own. --extra-time is never given: isolate
// then kills at max(time, extra-time), not at their sum.
func (x *Executor) runArgs(b *box, job *executor.Job, exe string, fds map[int]*os.File) []string {
	l := job.Limits
	args := append(x.boxArgs(b.isoID), "--meta="+b.meta, "--time="+secondsArg(*l.CPUTime))
	if wall, cause := wallLimit(l); cause != spec.NoLimit {
		args = append(args, "--wall-time="+secondsArg(wall))
	}
	switch {
	case x.cg:
		// Given on every run, with a limit nobody reaches when the request has
		// none: isolate 1.x resets the peak memory only when it sets a limit,
		// and a limit once set stays on the box's cgroup.
		kb := int64(math.MaxInt32) // isolate keeps the figure in an int
		if l.Memory != nil {
			kb = min(kilobytes(*l.Memory), kb)
		}
		args = append(args, "--cg-mem="+strconv.FormatInt(kb, 10))
	case l.Memory != nil:
		// Without cgroups, isolate can only bound each process's address space.
		args = append(args, "--mem="+strconv.FormatInt(kilobytes(*l.Memory), 10))
	}
	// isolate's /space is a directory, not a tmpfs of quota_space bytes: the
	// quota can only bound each file, which the job's own bound may lower.
	fileSize := b.quota
	if job.FileSize > 0 {
		fileSize = min(fileSize, job.FileSize)
	}
	args = append(args,
		"--processes="+strconv.FormatInt(*l.Processes, 10),
		"--open-files="+strconv.FormatInt(job.OpenFiles, 10),
		"--fsize="+intKilobytes(fileSize),
	)
	// Without --stack isolate lifts the stack limit.
	if job.Stack > 0 {
		args = append(args, "--stack="+intKilobytes(job.Stack))
	}
	args = append(args, b.dirArgs...)
	for _, v := range job.Views {
		mode := ""
		if v.Writable {
			mode = ":rw"
		}
		args = append(args, "--dir="+v.Path+mode+":norec") // see dirOptions
	}
	req := job.Stdio
	stdio := func(p string) string {
		if p == "" {
			return "/dev/null"
		}
		return spec.BoxPath(p)
	}
	args = append(args, "--chdir="+spec.SpaceDir)
	if fds[0] == nil {
		args = append(args, "--stdin="+stdio(req.Stdin))
	}
	if fds[1] == nil {
		args = append(args, "--stdout="+stdio(req.Stdout))
	}
	switch {
	case fds[2] != nil:
	case req.Stderr != "" && stdio(req.Stderr) == stdio(req.Stdout):
		// One open file, so that the two streams do not overwrite each other.
		args = append(args, "--stderr-to-stdout")
	default:
		args = append(args, "--stderr="+stdio(req.Stderr))
	}
	if fds != nil {
		args = append(args, "--inherit-fds")
	}
	// isolate adds LIBC_FATAL_STDERR_=1 to every environment; --env=NAME
	// without a value takes it from the given environment instead, or drops it.
	args = append(args, "--full-env", "--env=LIBC_FATAL_STDERR_", "--silent", "--run", "--", exe)
	return append(args, job.Argv[1:]...)
}

// intKilobytes is a size in kilobytes, rounded up, as isolate reads it: an
// int, so at most 2^31-1 (2 TiB, which no run reaches).
func intKilobytes(bytes int64) string {
	return strconv.FormatInt(min(kilobytes(bytes), math.MaxInt32), 10)
}

// isExecutable tells whether a path inside the box names an executable file,
// looking at the host directory isolate binds there. A symlink is followed
// as the host sees it, which is the box's view for the host directories
// shown unchanged.
func (b *box) isExecutable(p string, views []executor.HostView) bool {
	binds := [][2]string{{spec.SpaceDir, b.space}, {"/tmp", b.tmp}}
	for _, d := range b.dirs {
		binds = append(binds, [2]string{d, d})
	}
	for _, v := range views {
		binds = append(binds, [2]string{v.Path, v.Path})
	}
	for _, bind := range binds {
		if rest, ok := strings.CutPrefix(p, bind[0]); ok && (rest == "" || rest[0] == '/') {
			return executor.IsExecutableFile(bind[1] + rest)
		}
	}
	return false
}

// Check reports whether the isolate backend can work on this host,
// configured as cfg (its state dir a scratch one): isolate found, its
// version, whether it can use the host's cgroups, and a program run in a
// real box to prove it.
func Check(cfg Config) []executor.Finding {
	out := []executor.Finding{executor.CheckRoot()}
	path := cfg.Path
	if path == "" {
		path = "isolate"
	}
	found, err := exec.LookPath(path)
	if err != nil {
		return append(out, executor.Required("isolate", false, fmt.Sprintf("%s is not found (--isolate-path)", path)))
	}
	major, err := majorVersion(found)
	if err != nil {
		return append(out, executor.Required("isolate", false, err.Error()))
	}
	v, _ := exec.Command(found, "--version").Output()
	out = append(out, executor.Required("isolate", true, found+": "+firstLine(string(v))))
	cg := executor.Finding{Name: "cgroups", OK: usesHostCgroups(major), Detail: fmt.Sprintf("isolate %d.x drives this host's cgroups: runs are measured and limited with --cg", major)}
	if !cg.OK {
		cg.Detail = fmt.Sprintf("isolate %d.x cannot use this host's cgroups (1.x drives v1, 2.x v2): runs go without --cg, memory is bounded per process", major)
	}
	out = append(out, cg)
	if cg.OK && major >= 2 {
		root, err := cgroupRoot(found)
		f := executor.Required("cg root", err == nil, "isolate's boxes go in "+root+", which gives them the memory controller")
		if err != nil {
			f.Detail = err.Error()
		}
		out = append(out, f)
	}
	if out[0].OK {
		out = append(out, executor.CheckBox(func() (executor.Executor, error) { return New(cfg) }))
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
