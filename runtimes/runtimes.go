// Package runtimes installs runtimes: toolchains described by a shell.nix,
// whose environment nix-shell captures once inside a box and the store
// keeps, so that later runs start from it (seed 000, with DESIGN.md's fixes).
package runtimes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"sandboxd/boxfs"
	"sandboxd/executor"
	"sandboxd/spec"
	"sandboxd/store"
)

// Config configures a Manager.
type Config struct {
	Exec  executor.Executor
	Store store.Store
	// GCRootsDir holds the GC roots of the installed runtimes.
	GCRootsDir string
	// NixConfig is extra nix configuration for installs (NIX_CONFIG), such
	// as "substituters =" on a machine without internet.
	NixConfig string
	// MaxInstalls bounds the installs that run at once.
	MaxInstalls int
}

// Manager installs, lists and removes runtimes, and gives runs their environment.
type Manager struct {
	cfg      Config
	installs chan struct{}
	// rootsMu orders the creation of GC roots, the storing of rows and the
	// pruning of roots, so that a prune never meets roots whose row is not
	// stored yet.
	rootsMu sync.Mutex
}

// New makes a Manager and prunes the GC roots a killed sandboxd may have left.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.MaxInstalls < 1 {
		cfg.MaxInstalls = 1
	}
	m := &Manager{cfg: cfg, installs: make(chan struct{}, cfg.MaxInstalls)}
	m.rootsMu.Lock()
	defer m.rootsMu.Unlock()
	if err := m.prune(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// Runtime is what a run with the runtime called name gets: the runtime's
// environment and the nix store.
func (m *Manager) Runtime(name string) (executor.Runtime, error) {
	rt, err := m.cfg.Store.Get(context.Background(), name)
	if err != nil {
		return executor.Runtime{}, err
	}
	return executor.Runtime{Env: rt.Environment, Views: []executor.HostView{StoreView}}, nil
}

// List lists the installed runtimes.
func (m *Manager) List(ctx context.Context) ([]spec.RuntimeInfo, error) {
	rts, err := m.cfg.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]spec.RuntimeInfo, len(rts))
	for i, rt := range rts {
		out[i] = spec.RuntimeInfo{ID: rt.ID, Name: rt.Name, CreatedAt: rt.CreatedAt.UTC().Format("2006-01-02T15:04:05.000Z")}
	}
	return out, nil
}

// Remove drops a runtime and its GC roots.
func (m *Manager) Remove(ctx context.Context, name string) error {
	m.rootsMu.Lock()
	defer m.rootsMu.Unlock()
	if err := m.cfg.Store.Delete(ctx, name); err != nil {
		return err
	}
	return m.prune(ctx)
}

// Files of an install, in its box's /space.
const (
	shellFile  = "shell.nix"
	envFile    = "environment" // `env -0` of the shell
	stdoutFile = "stdout"
	stderrFile = "stderr"
)

// Bounds on what an install reads back from its box: the environment must
// fit a run's request to a box's init; of stdout and stderr the end is kept,
// where nix says what went wrong.
const (
	maxEnvironment = 512 << 10
	maxOutput      = 256 << 10
)

// Install runs nix-shell on req.NixShell in a fresh box and, if it succeeds,
// stores the runtime. A failed install is not an error: its reply says how
// it failed, and nothing is stored. Errors are for what stops an install
// from being tried (nix unavailable, the name taken, the box failing).
func (m *Manager) Install(ctx context.Context, req *spec.InstallRequest) (*spec.InstallResult, error) {
	nixShell, err := nixAvailable()
	if err != nil {
		return nil, err
	}
	if !req.Replace {
		if _, err := m.cfg.Store.Get(ctx, req.Name); err == nil {
			return nil, spec.Errorf(spec.CodeRuntimeExists, "runtime %q is already installed (send \"replace\": true to replace it)", req.Name)
		} else if spec.CodeOf(err) != spec.CodeNoSuchRuntime {
			return nil, err
		}
	}
	select {
	case m.installs <- struct{}{}:
		defer func() { <-m.installs }()
	case <-ctx.Done():
		return nil, spec.Errorf(spec.CodeShuttingDown, "install %q not started: sandboxd is shutting down", req.Name)
	}
	res, env, err := m.capture(ctx, nixShell, req)
	if err != nil || env == nil {
		return res, err
	}
	if err := m.keep(ctx, nixShell, req, env); err != nil {
		return nil, fmt.Errorf("install %q: %w", req.Name, err)
	}
	return res, nil
}

// capture runs nix-shell in a fresh box. It returns the reply, and the
// captured environment if the install succeeded.
func (m *Manager) capture(ctx context.Context, nixShell string, req *spec.InstallRequest) (*spec.InstallResult, map[string]string, error) {
	box, err := m.cfg.Exec.OpenBox(spec.BoxOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("install %q: %w", req.Name, err)
	}
	defer m.cfg.Exec.CloseBox(box)
	info, err := m.cfg.Exec.Box(box)
	if err != nil {
		return nil, nil, fmt.Errorf("install %q: %w", req.Name, err)
	}
	space := boxfs.Space{BoxInfo: info}
	if _, err := space.WriteFile(shellFile, []byte(req.NixShell), 0o644); err != nil {
		return nil, nil, fmt.Errorf("install %q: %w", req.Name, err)
	}
	run, err := m.cfg.Exec.Run(ctx, box, executor.NewJob(m.runRequest(nixShell, req), installRuntime(req)))
	if err != nil {
		return nil, nil, fmt.Errorf("install %q: %w", req.Name, err)
	}
	res := installResult(req, run)
	for _, o := range []struct {
		file string
		dst  *string
	}{{stdoutFile, &res.Stdout}, {stderrFile, &res.Stderr}} {
		if *o.dst, err = readTail(space, o.file, maxOutput); err != nil {
			return nil, nil, fmt.Errorf("install %q: %w", req.Name, err)
		}
	}
	if res.ExitStatus != nil {
		return res, nil, nil
	}
	data, size, _, err := space.ReadFile(envFile, 0, maxEnvironment)
	if err != nil {
		return nil, nil, fmt.Errorf("install %q: read the captured environment: %w", req.Name, err)
	}
	if size > maxEnvironment {
		return nil, nil, fmt.Errorf("install %q: the environment is %d bytes, over the %d a runtime may have", req.Name, size, maxEnvironment)
	}
	env, err := parseEnv(data)
	if err != nil {
		return nil, nil, fmt.Errorf("install %q: %w", req.Name, err)
	}
	return res, env, nil
}

// keep roots the runtime's store paths and stores its row; on failure,
// neither stays.
func (m *Manager) keep(ctx context.Context, nixShell string, req *spec.InstallRequest, env map[string]string) error {
	m.rootsMu.Lock()
	defer m.rootsMu.Unlock()
	err := m.addRoots(ctx, nixShell, req.Name, env)
	if err == nil {
		_, err = m.cfg.Store.Put(ctx, store.Runtime{Name: req.Name, NixShell: req.NixShell, Environment: env}, req.Replace)
	}
	return errors.Join(err, m.prune(ctx))
}

// runRequest is the run of nix-shell in the box. The environment goes to a
// file, not to stdout, so that what a shellHook prints cannot mix with it.
// Limits, in the seed's units: extra_time extends the CPU and wall time
// limits at which the run is killed, as isolate's --extra-time does; the
// status still says TO past cpu_time or wall_time (installResult).
func (m *Manager) runRequest(nixShell string, req *spec.InstallRequest) *spec.RunRequest {
	extra := 0.0
	if req.ExtraTime != nil {
		extra = *req.ExtraTime
	}
	cpu, wall := *req.CPUTime+extra, *req.WallTime+extra
	memory := *req.Memory * 1024
	env := map[string]string{
		"NIX_REMOTE":      "daemon",
		"NIX_BUILD_SHELL": "/bin/bash",
		"HOME":            spec.SpaceDir, // nix aborts without one
		"TMPDIR":          "/tmp",
		"PATH":            "/usr/bin:/bin",
	}
	if m.cfg.NixConfig != "" {
		env["NIX_CONFIG"] = m.cfg.NixConfig
	}
	return &spec.RunRequest{
		Argv:   []string{nixShell, "--pure", shellFile, "--run", "env -0 >" + spec.SpaceDir + "/" + envFile},
		Env:    env,
		Stdio:  spec.Stdio{Stdout: stdoutFile, Stderr: stderrFile},
		Limits: spec.Limits{RealTime: &wall, CPUTime: &cpu, Memory: &memory, Processes: req.MaxNumberOfProcesses},
	}
}

// installRuntime is what the run of nix-shell gets beyond its request: the
// store and the daemon, and the install's bounds on files.
func installRuntime(req *spec.InstallRequest) executor.Runtime {
	rt := executor.Runtime{Views: []executor.HostView{StoreView, DaemonView}}
	if req.MaxFileSize != nil {
		rt.FileSize = *req.MaxFileSize * 1024
	}
	if req.MaxOpenFiles != nil {
		rt.OpenFiles = *req.MaxOpenFiles
	}
	return rt
}

// installResult puts a run's outcome in the seed's terms, as isolate's meta
// file would: TO past cpu_time or wall_time (even within extra_time), SG for
// a signal (the kernel's SIGKILL when over memory), RE for a non-zero exit.
func installResult(req *spec.InstallRequest, r spec.RunResult) *spec.InstallResult {
	memory := r.Memory / 1024
	res := &spec.InstallResult{Memory: &memory, CPUTime: &r.CPUTime, WallTime: &r.RealTime}
	status := func(s, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		res.ExitStatus, res.ExitMessage = &s, &msg
	}
	switch {
	case r.Verdict == spec.VerdictCPUTimeLimit || r.CPUTime > *req.CPUTime:
		status(spec.StatusTimeout, "Time limit exceeded")
	case r.Verdict == spec.VerdictRealTimeLimit || r.RealTime > *req.WallTime:
		status(spec.StatusTimeout, "Time limit exceeded (wall clock)")
	case r.Verdict == spec.VerdictMemoryLimitExceeded:
		sig := 9
		res.ExitSignal = &sig
		status(spec.StatusSignaled, "Caught fatal signal 9 (memory limit exceeded)")
	case r.Verdict == spec.VerdictSignaled:
		sig := -*r.ExitCode
		res.ExitSignal = &sig
		status(spec.StatusSignaled, "Caught fatal signal %d", sig)
	default:
		res.ExitCode = r.ExitCode
		if *r.ExitCode != 0 {
			status(spec.StatusRuntimeError, "Exited with error status %d", *r.ExitCode)
		}
	}
	return res
}

// readTail reads the last limit bytes of a file of the box, as valid UTF-8.
func readTail(space boxfs.Space, file string, limit int64) (string, error) {
	_, size, _, err := space.ReadFile(file, 0, 0)
	if err != nil {
		return "", err
	}
	data, _, _, err := space.ReadFile(file, max(0, size-limit), limit)
	if err != nil {
		return "", err
	}
	return strings.ToValidUTF8(string(data), "\uFFFD"), nil
}
