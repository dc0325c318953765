// Command sandboxd runs untrusted programs in boxes for judges. A judge
// spawns it and speaks JSON lines over its stdin and stdout (PROTOCOL.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/executor/isolate"
	"sandboxd/executor/native"
	"sandboxd/protocol"
	"sandboxd/runtimes"
	"sandboxd/spec"
	"sandboxd/store"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type options struct {
	parallel  int
	logLevel  string
	stateDir  string
	executor  string
	isolate   string
	firstBox  int
	maxLine   int
	uidBase   int
	dirs      string
	db        string
	nixConfig string
	installs  int
	version   bool
	checkOnly bool
	keepProcs bool
	cpuList   string
	cpus      []int // parsed from cpuList
}

func main() {
	// A box's init is this same binary; it must take over before anything else runs.
	native.RunBoxInitIfRequested()
	// What the judge left open, and the signals it blocked or ignored, must
	// reach no process sandboxd starts.
	if err := executor.CloseInheritedFDs(); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
	if err := executor.ResetInheritedSignals(); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		os.Exit(1)
	}
	os.Exit(run(os.Args[1:]))
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sandboxd", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: sandboxd [flags]        serve the protocol on stdin/stdout (see PROTOCOL.md)
       sandboxd check [flags]  report what this host offers and exit non-zero if sandboxd cannot work

Flags:
`)
		fs.PrintDefaults()
	}
	fs.IntVar(&o.parallel, "parallel", defaultParallel(), "runs executed at once (boxes run in parallel, one request at a time each; other requests never wait for a slot); default: the CPUs sandboxd may run on, or its cgroup's CPU quota if lower")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level on stderr: debug, info, warn, error")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/sandboxd", "directory for boxes and state; one sandboxd at a time per directory")
	fs.StringVar(&o.executor, "executor", "native", "sandbox backend: native, or isolate (drives an installed ioi/isolate)")
	fs.StringVar(&o.isolate, "isolate-path", "isolate", "isolate binary for --executor=isolate: a path, or a name looked up on PATH")
	fs.IntVar(&o.firstBox, "isolate-first-box", 0, "lowest isolate box id that --executor=isolate takes; lower ones are left to other isolate users")
	fs.IntVar(&o.maxLine, "max-line", protocol.DefaultMaxLine, "longest request line accepted, in bytes")
	fs.IntVar(&o.uidBase, "uid-base", 60000, "uid and gid of box 0; box n runs as uid-base+n (with --executor=isolate: isolate's first_uid)")
	fs.StringVar(&o.dirs, "dirs", strings.Join(spec.DefaultDirs, ","), "host directories shown read-only in every box, comma-separated")
	fs.StringVar(&o.db, "db", "", "SQLite database of the installed runtimes (default <state-dir>/sandboxd.db)")
	fs.StringVar(&o.nixConfig, "nix-config", "", "extra nix configuration for installs, as NIX_CONFIG (e.g. 'substituters =' without internet)")
	fs.IntVar(&o.installs, "max-installs", 2, "install_package requests run at once")
	fs.BoolVar(&o.keepProcs, "no-move-processes", false, "cgroup v2, in a container's root cgroup: do not move the container's other processes into <root>/leaf (sandboxd then refuses to start while they are there)")
	fs.StringVar(&o.cpuList, "cpus", "", "CPUs that runs are pinned to, each run to one of its own, e.g. 2-7 or 0,2,4-5 (native executor; --parallel defaults to their number)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if len(args) > 0 && args[0] == "check" {
		o.checkOnly = true
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see sandboxd --help)", fs.Arg(0))
	}
	if o.executor != "native" && o.executor != "isolate" {
		return nil, fmt.Errorf("unknown --executor %q: the backends are: native, isolate", o.executor)
	}
	if o.firstBox < 0 {
		return nil, fmt.Errorf("--isolate-first-box %d: isolate box ids start at 0", o.firstBox)
	}
	if o.parallel < 1 || o.installs < 1 {
		return nil, fmt.Errorf("--parallel and --max-installs must be at least 1")
	}
	if err := o.pinning(fs); err != nil {
		return nil, err
	}
	if err := (spec.BoxOptions{Dirs: splitList(o.dirs)}).Validate(); err != nil {
		return nil, fmt.Errorf("--%w", err) // "--dirs: ..."
	}
	if o.db == "" {
		o.db = filepath.Join(o.stateDir, "sandboxd.db")
	}
	return o, nil
}

// defaultParallel is the CPUs sandboxd may run on (its affinity), or, if
// lower, its cgroup's CPU quota rounded up: in a container with limits.cpu
// of 2 on a 64-CPU node, 64 runs at once would throttle each other.
func defaultParallel() int {
	n := runtime.NumCPU()
	if quota, ok := cgroup.CPUQuota(); ok {
		n = min(n, max(1, int(math.Ceil(quota))))
	}
	return n
}

// pinning reads --cpus: the CPUs runs are pinned to, one run on each at a
// time, so that --parallel is at most their number, and that by default.
func (o *options) pinning(fs *flag.FlagSet) error {
	var err error
	if o.cpus, err = cgroup.ParseCPUList(o.cpuList); err != nil {
		return fmt.Errorf("--cpus: %w", err)
	}
	if o.cpuList == "" {
		return nil
	}
	if len(o.cpus) == 0 {
		return fmt.Errorf("--cpus %q names no CPU", o.cpuList)
	}
	if o.executor != "native" {
		return fmt.Errorf("--cpus is for the native executor: isolate pins nothing")
	}
	parallelSet := false
	fs.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "parallel" })
	switch {
	case !parallelSet:
		o.parallel = len(o.cpus)
	case o.parallel > len(o.cpus):
		return fmt.Errorf("--parallel %d is more than the %d CPUs of --cpus %s: each run needs one of its own", o.parallel, len(o.cpus), o.cpuList)
	}
	return nil
}

func run(args []string) int {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd:", err)
		return 2
	}
	if o.version {
		fmt.Println("sandboxd", version)
		return 0
	}
	if o.checkOnly {
		return check(o)
	}
	// The first reply's JSON codecs are built while the executor starts.
	go protocol.Prepare()
	level, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxd: bad --log-level:", err)
		return 2
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, TimeFormat: time.RFC3339, NoColor: !isatty.IsTerminal(os.Stderr.Fd())}).Level(level).With().Timestamp().Logger()
	if os.Geteuid() != 0 {
		log.Error().Msg("sandboxd must run as root: it creates namespaces, cgroups and mounts, and runs programs as unprivileged box users")
		return 1
	}

	// The protocol goes on when the judge stops reading replies; a lost
	// reply is its loss. A handler, not SIG_IGN, which children would keep.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// Before the executor starts its work in the background: the signal
	// handling takes a thread of its own, which a fork in progress delays.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	exec, err := newExecutor(o, log)
	if err != nil {
		log.Error().Err(err).Msgf("cannot start the %s executor (run `sandboxd check`)", o.executor)
		return 1
	}
	rts := openRuntimesInBackground(o, exec, log)
	defer rts.close()
	log.Info().Str("version", version).Str("state_dir", o.stateDir).Str("db", o.db).Int("parallel", o.parallel).Msg("serving on stdin/stdout")

	srv := &protocol.Server{Exec: exec, Runtimes: rts, Parallel: o.parallel, MaxLine: o.maxLine, Version: version,
		Observe: func(command string, took time.Duration, err error) {
			switch code := spec.CodeOf(err); {
			case err == nil:
				log.Debug().Str("command", command).Dur("took", took).Msg("done")
			case code == spec.CodeInternal:
				log.Error().Str("command", command).Dur("took", took).Err(err).Msg("failed")
			default:
				log.Debug().Str("command", command).Dur("took", took).Str("code", string(code)).Err(err).Msg("refused")
			}
		}}
	serveErr := srv.Serve(ctx, requestInput(), os.Stdout)
	if err := exec.Close(); err != nil {
		log.Error().Err(err).Msg("clean-up failed")
		return 1
	}
	switch {
	case serveErr == nil:
		log.Info().Msg("end of input: every box closed")
	case ctx.Err() != nil:
		log.Info().Msg("stopped by signal: every box closed")
	default:
		log.Error().Err(serveErr).Msg("reading requests failed")
		return 1
	}
	return 0
}

// openingRuntimes are the runtimes while their database opens in the
// background: the first reply does not wait for SQLite and the pruning of
// GC roots. A request that needs the runtimes waits for them, and gets the
// error that kept them from opening, if one did (logged when it happens).
type openingRuntimes struct {
	opened chan struct{}
	rts    *runtimes.Manager
	db     store.Store
	err    error
}

func openRuntimesInBackground(o *options, exec executor.Executor, log zerolog.Logger) *openingRuntimes {
	r := &openingRuntimes{opened: make(chan struct{})}
	go func() {
		defer close(r.opened)
		if r.rts, r.db, r.err = openRuntimes(o, exec); r.err != nil {
			log.Error().Err(r.err).Msg("cannot open the runtimes: runtime requests fail")
			r.err = fmt.Errorf("the runtimes could not be opened: %w", r.err)
		}
	}()
	return r
}

func (r *openingRuntimes) manager() (*runtimes.Manager, error) {
	<-r.opened
	return r.rts, r.err
}

func (r *openingRuntimes) Runtime(name string) (executor.Runtime, error) {
	m, err := r.manager()
	if err != nil {
		return executor.Runtime{}, err
	}
	return m.Runtime(name)
}

func (r *openingRuntimes) Install(ctx context.Context, req *spec.InstallRequest) (*spec.InstallResult, error) {
	m, err := r.manager()
	if err != nil {
		return nil, err
	}
	return m.Install(ctx, req)
}

func (r *openingRuntimes) List(ctx context.Context) ([]spec.RuntimeInfo, error) {
	m, err := r.manager()
	if err != nil {
		return nil, err
	}
	return m.List(ctx)
}

func (r *openingRuntimes) Remove(ctx context.Context, name string) error {
	m, err := r.manager()
	if err != nil {
		return err
	}
	return m.Remove(ctx, name)
}

// close closes the database, once it is open.
func (r *openingRuntimes) close() {
	<-r.opened
	if r.db != nil {
		r.db.Close()
	}
}

// openRuntimes opens the runtime database and the runtimes on it.
func openRuntimes(o *options, exec executor.Executor) (*runtimes.Manager, store.Store, error) {
	gcRoots, err := filepath.Abs(filepath.Join(o.stateDir, "gcroots"))
	if err != nil {
		return nil, nil, err
	}
	db, err := store.Open(o.db)
	if err != nil {
		return nil, nil, err
	}
	rts, err := runtimes.New(context.Background(), runtimes.Config{
		Exec: exec, Store: db, GCRootsDir: gcRoots, NixConfig: o.nixConfig, MaxInstalls: o.installs,
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return rts, db, nil
}

func newExecutor(o *options, log zerolog.Logger) (executor.Executor, error) {
	if o.executor == "isolate" {
		return isolate.New(isolate.Config{
			Path:     o.isolate,
			StateDir: o.stateDir,
			FirstUID: o.uidBase,
			FirstBox: o.firstBox,
			Dirs:     splitList(o.dirs),
		})
	}
	return native.New(native.Config{
		StateDir: o.stateDir,
		UIDBase:  o.uidBase,
		Dirs:     splitList(o.dirs),
		Views:    runtimes.Views,
		Cgroup:   cgroup.PlaceOptions{KeepOthers: o.keepProcs, CPUs: o.cpus},
		// A box's init writes on its stderr only when it crashes.
		InitLog: func(box int, line string) { log.Error().Int("box", box).Str("line", line).Msg("box init") },
	})
}

func check(o *options) int {
	scratch := filepath.Join(os.TempDir(), fmt.Sprintf("sandboxd-check-%d", os.Getpid()))
	defer os.RemoveAll(scratch)
	// What the chosen backend needs, proven in a real box on a scratch state dir.
	var findings []executor.Finding
	if o.executor == "isolate" {
		findings = isolate.Check(isolate.Config{Path: o.isolate, StateDir: scratch, FirstUID: o.uidBase, FirstBox: o.firstBox, Dirs: splitList(o.dirs)})
	} else {
		findings = native.Check(native.Config{StateDir: scratch, UIDBase: o.uidBase, Dirs: splitList(o.dirs), Cgroup: cgroup.PlaceOptions{KeepOthers: o.keepProcs, CPUs: o.cpus}})
	}
	findings = append(findings, runtimes.Check()...)
	findings = append(findings, executor.CheckTiming(o.cpus)...)
	code := 0
	for _, f := range findings {
		mark := "ok  "
		switch {
		case f.OK:
		case f.Required:
			mark, code = "FAIL", 1
		case f.Warn:
			mark = "warn"
		default:
			mark = "--  "
		}
		fmt.Printf("%s %-11s %s\n", mark, f.Name, f.Detail)
	}
	if code != 0 {
		fmt.Println("sandboxd cannot work on this host: see the FAIL lines above")
	}
	return code
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
