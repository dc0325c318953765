package tests

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Runtimes through the protocol, with the host's real nix daemon, offline:
// every shell.nix is built from builtins only. `make test` sets nix up
// (scripts/setup-nix.sh); without it these tests skip, saying why.

var (
	nixOnce   sync.Once
	nixReason string
)

// requireNix skips the test unless `sandboxd check` finds nix-shell and a
// daemon that answers.
func requireNix(t *testing.T) {
	t.Helper()
	nixOnce.Do(func() {
		out, _ := exec.Command(sandboxdBin, "check", "--uid-base="+strconv.Itoa(takeUIDs(t))).CombinedOutput()
		for _, name := range []string{"nix", "nix-daemon"} {
			if !strings.Contains(string(out), fmt.Sprintf("ok   %-11s", name)) {
				nixReason = "nix is not set up on this host (run scripts/setup-nix.sh as root):\n" + string(out)
				return
			}
		}
	})
	if nixReason != "" {
		t.Skip(nixReason)
	}
}

// nixServer is a sandboxd that installs without a binary cache. Its box
// uids are its own: processes limits count every process of a uid, and the
// executor's tests, which go test may run meanwhile, use 60000 and up.
func nixServer(t *testing.T, args ...string) *server {
	requireNix(t)
	return startServer(t, append([]string{"--nix-config", "substituters =", "--uid-base", "61000"}, args...)...)
}

// myVar is a runtime variable that `export`'s output would mangle.
const myVar = "a \"quoted\" $dollar 'single' \\back\nnewline=equals"

// shellNix is a runtime: a tool derivation with a script in $out/bin, a fake
// stdenv whose setup exports PATH (nix-shell 2.8 exports none itself) with
// the relative entries ("." and "") nix-shell may add, and a variable. nonce makes its store paths new, so that each test builds them.
// Inside nix's build sandbox PATH is unset: the builders set their own.
func shellNix(nonce, value string) string {
	return fmt.Sprintf(`let
  sys = builtins.currentSystem;
  tool = derivation {
    name = "hello-tool-%[1]s"; system = sys; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir -p $out/bin; printf '#!/bin/sh\\necho hello from tool %[1]s\\n' > $out/bin/hello-tool; chmod +x $out/bin/hello-tool" ];
  };
  setupScript = builtins.toFile "setup" ''
    _p=
    for _i in $buildInputs; do _p="$_p''${_p:+:}$_i/bin"; done
    export PATH=".:$_p''${_p:+:}:/usr/bin:/bin"
    unset _p _i
  '';
  stdenv = derivation {
    name = "fake-stdenv-%[1]s"; system = sys; builder = "/bin/sh"; PATH = "/usr/bin:/bin";
    args = [ "-c" "mkdir $out && cp ${setupScript} $out/setup" ];
  };
in derivation {
  name = "rt"; system = sys; builder = "/bin/sh";
  MYVAR = %[2]q;
  buildInputs = [ tool ];
  inherit stdenv;
}
`, nonce, value)
}

// install is an install_package request with roomy limits.
func install(name, nixShell string, kv ...any) obj {
	return with(obj{"command": "install_package", "name": name, "nix_shell": nixShell,
		"wall_time": 60.0, "cpu_time": 30.0, "extra_time": 0.5, "memory": 512000,
		"max_open_files": 256, "max_file_size": 65536, "max_number_of_processes": 64}, kv...)
}

func nonce() string { return fmt.Sprint(time.Now().UnixNano()) }

// seedFields are the fields of the seed's install reply, every one always present.
var seedFields = []string{"memory", "exit_code", "exit_signal", "exit_message", "exit_status", "stdout", "stderr", "cpu_time", "wall_time"}

func expectInstalled(t *testing.T, r obj) {
	t.Helper()
	if len(r) != len(seedFields) {
		t.Errorf("install reply has fields %v, want exactly the seed's %v", r, seedFields)
	}
	for _, k := range seedFields {
		if _, ok := r[k]; !ok {
			t.Errorf("install reply lacks %q: %v", k, r)
		}
	}
	if r["exit_status"] != nil || r["exit_code"] != 0.0 {
		t.Fatalf("install failed: %v", r)
	}
}

func expectNotInstalled(t *testing.T, r obj, status string) {
	t.Helper()
	if r["exit_status"] != status {
		t.Fatalf("exit_status: got %v, want %s (reply %v)", r["exit_status"], status, r)
	}
	if msg, _ := r["exit_message"].(string); msg == "" {
		t.Errorf("a failed install has no exit_message: %v", r)
	}
}

// runtimeNames lists the installed runtimes' names.
func runtimeNames(t *testing.T, s *server) []string {
	t.Helper()
	var names []string
	for _, rt := range s.ok(obj{"command": "list_runtimes"})["runtimes"].([]any) {
		names = append(names, rt.(map[string]any)["name"].(string))
	}
	return names
}

// runOut runs argv with a runtime and returns its stdout and stderr.
func runOut(t *testing.T, s *server, runtime string, argv ...string) string {
	t.Helper()
	r := s.ok(with(run(argv...), "runtime", runtime, "stdout", "out", "stderr", "out"))
	out := s.ok(obj{"command": "read_file", "path": "out"})["content"].(string)
	if r["limit_verdict"] != "OK" || r["exit_code"] != 0.0 {
		t.Fatalf("run %v: %v, output %q", argv, r, out)
	}
	return out
}

// deadPaths is what nix's garbage collector would delete now.
func deadPaths(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nix-store", "--gc", "--print-dead").Output()
	if err != nil {
		var stderr []byte
		if exit, ok := err.(*exec.ExitError); ok {
			stderr = exit.Stderr
		}
		t.Fatalf("nix-store --gc --print-dead: %v: %s", err, stderr)
	}
	return string(out)
}

func TestRuntimeInstallAndRun(t *testing.T) {
	installAndRun(t, nixServer(t))
}

// The seed installed through isolate: the same, with --executor=isolate,
// where an isolate binary is present (SANDBOXD_ISOLATE or on PATH).
func TestRuntimeInstallAndRunOnIsolate(t *testing.T) {
	isolate := os.Getenv("SANDBOXD_ISOLATE")
	if isolate == "" {
		var err error
		if isolate, err = exec.LookPath("isolate"); err != nil {
			t.Skip("no isolate binary: put isolate on PATH or set SANDBOXD_ISOLATE=/path/to/isolate")
		}
	}
	// isolate's boxes run as 60000 + its box id: box ids from 700 keep
	// clear of other tests' uids.
	installAndRun(t, nixServer(t, "--executor=isolate", "--isolate-path", isolate, "--isolate-first-box", "700", "--uid-base", "60000"))
}

func installAndRun(t *testing.T, s *server) {
	n := nonce()
	start := time.Now()
	r := s.ok(install("tool", shellNix(n, myVar)))
	expectInstalled(t, r)
	t.Logf("install with two fresh derivations: %v end to end, wall_time %v s, memory %v KB", time.Since(start).Round(time.Millisecond), r["wall_time"], r["memory"])

	list := s.ok(obj{"command": "list_runtimes"})["runtimes"].([]any)
	if len(list) != 1 {
		t.Fatalf("list_runtimes: %v", list)
	}
	rt := list[0].(map[string]any)
	if rt["name"] != "tool" || rt["id"] == nil {
		t.Errorf("list_runtimes entry: %v", rt)
	}
	if _, err := time.Parse(time.RFC3339, rt["created_at"].(string)); err != nil {
		t.Errorf("created_at: %v", err)
	}

	if out := runOut(t, s, "tool", "hello-tool"); out != "hello from tool "+n+"\n" {
		t.Errorf("the tool called by bare name said %q", out)
	}
	if out := runOut(t, s, "tool", "/bin/sh", "-c", `printf %s "$MYVAR"`); out != myVar {
		t.Errorf("MYVAR in the run: got %q, want %q", out, myVar)
	}
	r = s.ok(with(run("/bin/sh", "-c", `printf %s "$MYVAR"`), "runtime", "tool", "env", obj{"MYVAR": "mine"}, "stdout", "out"))
	expectVerdict(t, r, "OK", code(0))
	if out := s.ok(obj{"command": "read_file", "path": "out"})["content"]; out != "mine" {
		t.Errorf("env given with the run should override the runtime's: got %q", out)
	}
	path := runOut(t, s, "tool", "/bin/sh", "-c", `printf %s "$PATH"`)
	for _, dir := range strings.Split(path, ":") {
		if !strings.HasPrefix(dir, "/") {
			t.Errorf("PATH %q holds the relative entry %q", path, dir)
		}
	}
	env := runOut(t, s, "tool", "/usr/bin/env")
	for _, v := range []string{"NIX_BUILD_TOP=", "IN_NIX_SHELL=", "out=", "builder=", "SHLVL=", "NIX_REMOTE="} {
		if strings.Contains("\n"+env, "\n"+v) {
			t.Errorf("the runtime kept nix-shell's own variable %s: %q", v, env)
		}
	}

	// A run with a runtime sees the store, never the daemon.
	if out := runOut(t, s, "tool", "/bin/sh", "-c", "ls -A /nix/var/nix/daemon-socket 2>/dev/null; test -e /nix/var/nix/daemon-socket/socket && echo SOCKET; true"); out != "" {
		t.Errorf("a run with a runtime sees the nix daemon's socket directory: %q", out)
	}

	toolPath := strings.TrimSuffix(runOut(t, s, "tool", "/bin/sh", "-c", "command -v hello-tool"), "/bin/hello-tool\n")
	if !strings.HasPrefix(toolPath, "/nix/store/") {
		t.Fatalf("hello-tool is at %q, not in the store", toolPath)
	}
	if strings.Contains(deadPaths(t), toolPath) {
		t.Errorf("the runtime's tool %s is not rooted: the garbage collector would delete it", toolPath)
	}

	s.ok(obj{"command": "remove_runtime", "name": "tool"})
	if names := runtimeNames(t, s); len(names) != 0 {
		t.Errorf("runtimes after remove_runtime: %v", names)
	}
	expectError(t, s.call(with(run("hello-tool"), "runtime", "tool")), "no_such_runtime")
	expectError(t, s.call(obj{"command": "remove_runtime", "name": "tool"}), "no_such_runtime")
	if !strings.Contains(deadPaths(t), toolPath) {
		t.Errorf("remove_runtime left the tool %s rooted", toolPath)
	}
}

func TestRuntimeDuplicateAndReplace(t *testing.T) {
	s := nixServer(t)
	expectInstalled(t, s.ok(install("dup", shellNix(nonce(), "first"))))
	expectError(t, s.call(install("dup", shellNix(nonce(), "second"))), "runtime_exists")
	if out := runOut(t, s, "dup", "/bin/sh", "-c", `printf %s "$MYVAR"`); out != "first" {
		t.Errorf("a refused install changed the runtime: MYVAR %q", out)
	}
	expectInstalled(t, s.ok(install("dup", shellNix(nonce(), "second"), "replace", true)))
	if out := runOut(t, s, "dup", "/bin/sh", "-c", `printf %s "$MYVAR"`); out != "second" {
		t.Errorf("after replace: MYVAR %q, want second", out)
	}
	if names := runtimeNames(t, s); len(names) != 1 {
		t.Errorf("runtimes after a replace: %v", names)
	}
}

func TestRuntimeFailedInstallsStoreNothing(t *testing.T) {
	s := nixServer(t)
	sys := `system = builtins.currentSystem; builder = "/bin/sh"; PATH = "/usr/bin:/bin";`
	cases := []struct {
		name, nix string
		limits    []any
		status    string
		stderr    string
	}{
		{"syntax", "let x = 1; in derivation {", nil, "RE", "error:"},
		{"build", fmt.Sprintf(`derivation { name = "x"; %[1]s buildInputs = [ (derivation { name = "dep-%[2]s"; %[1]s args = [ "-c" "echo failing on purpose >&2; exit 3" ]; }) ]; }`, sys, nonce()),
			nil, "RE", "failing on purpose"},
		// The client waits for the daemon's build: wall time counts it.
		{"wall-time", fmt.Sprintf(`derivation { name = "x"; %[1]s buildInputs = [ (derivation { name = "slow-%[2]s"; %[1]s args = [ "-c" "sleep 30; echo > $out" ]; }) ]; }`, sys, nonce()),
			[]any{"wall_time", 1.0, "extra_time", 0.2}, "TO", ""},
		// Evaluation that outgrows memory: the kernel kills nix-shell.
		{"memory", `let n = builtins.foldl' (a: b: a + b) 0 (builtins.genList (x: x) 20000000); in derivation { name = "big-${toString n}"; system = builtins.currentSystem; builder = "/bin/sh"; }`,
			[]any{"memory", 65536}, "SG", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := s.ok(install(c.name, c.nix, c.limits...))
			expectNotInstalled(t, r, c.status)
			if !strings.Contains(r["stderr"].(string), c.stderr) {
				t.Errorf("stderr %q does not say %q", r["stderr"], c.stderr)
			}
			if c.status == "TO" && r["wall_time"].(float64) > 1.5 {
				t.Errorf("wall_time %v: the install was not killed at wall_time + extra_time", r["wall_time"])
			}
			if c.status == "SG" && r["exit_signal"] != 9.0 {
				t.Errorf("exit_signal: got %v, want 9", r["exit_signal"])
			}
			expectError(t, s.call(with(run("/bin/true"), "runtime", c.name)), "no_such_runtime")
		})
	}
	if names := runtimeNames(t, s); len(names) != 0 {
		t.Errorf("failed installs stored runtimes: %v", names)
	}
}

func TestInstallRequestsAreChecked(t *testing.T) {
	s := startServer(t)
	expectError(t, s.call(with(install("x", "{}"), "cpu_limit", 1)), "unknown_field")
	req := install("x", "{}")
	delete(req, "cpu_time")
	expectError(t, s.call(req), "missing_limit")
	expectError(t, s.call(install("../x", "{}")), "invalid_argument")
	expectError(t, s.call(install("x", "{}", "memory", -1)), "invalid_argument")
	expectError(t, s.call(obj{"command": "remove_runtime", "name": "nothing"}), "no_such_runtime")
	expectError(t, s.call(with(run("/bin/true"), "runtime", "nothing")), "no_such_runtime")
}

// A sandboxd killed outright during an install leaves a database that opens
// cleanly, with the runtimes installed before and no trace of the install.
func TestRuntimeDatabaseSurvivesKill(t *testing.T) {
	requireNix(t)
	state := t.TempDir()
	a := nixServer(t, "--state-dir", state)
	expectInstalled(t, a.ok(install("kept", shellNix(nonce(), "kept"))))
	slow := fmt.Sprintf(`derivation { name = "x"; system = builtins.currentSystem; builder = "/bin/sh"; buildInputs = [ (derivation { name = "slow-%s"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" "/usr/bin/sleep 30" ]; }) ]; }`, nonce())
	a.send(mustJSON(install("killed", slow)))
	time.Sleep(time.Second) // the install is waiting for its build
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.cmd.Wait()
	a.exited = true

	b := nixServer(t, "--state-dir", state)
	if names := runtimeNames(t, b); len(names) != 1 || names[0] != "kept" {
		t.Fatalf("runtimes after kill -9 and restart: %v, want [kept]", names)
	}
	if out := runOut(t, b, "kept", "/bin/sh", "-c", `printf %s "$MYVAR"`); out != "kept" {
		t.Errorf("MYVAR of the kept runtime: %q", out)
	}
	expectInstalled(t, b.ok(install("killed", shellNix(nonce(), "again"))))
	if _, err := os.Stat(state + "/sandboxd.db"); err != nil {
		t.Errorf("the database is not where --db defaults to: %v", err)
	}
}

// A runtime database that cannot be opened (here --db names a directory)
// does not keep sandboxd from serving: it starts, its boxes work, and each
// runtime request fails with an error that says why.
func TestAnUnusableRuntimeDatabaseFailsOnlyRuntimeRequests(t *testing.T) {
	db := t.TempDir()
	s := startServer(t, "--db", db)
	expectVerdict(t, s.ok(run("/bin/true")), "OK", code(0))
	for _, req := range []obj{
		{"command": "list_runtimes"},
		{"command": "remove_runtime", "name": "any"},
		install("any", "{}"),
		with(run("/bin/true"), "runtime", "any"),
	} {
		r := s.call(req)
		expectError(t, r, "internal")
		if msg := r["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "runtimes could not be opened") || !strings.Contains(msg, db) {
			t.Errorf("%v: the error says %q, want why the runtimes could not be opened", req["command"], msg)
		}
	}
	if code := s.wait(); code != 0 {
		t.Errorf("exit code %d (stderr: %s)", code, s.stderr.String())
	}
	if !strings.Contains(s.stderr.String(), "cannot open the runtimes") {
		t.Errorf("the log does not tell: %s", s.stderr.String())
	}
}
