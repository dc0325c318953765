package runtimes

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"sandboxd/executor"
	"sandboxd/spec"
)

// DaemonSocketDir holds the nix daemon's socket on the host and, during an
// install, in its box.
const DaemonSocketDir = "/nix/var/nix/daemon-socket"

// DaemonSocket is where the nix daemon listens, on the host and in an install's box.
const DaemonSocket = DaemonSocketDir + "/socket"

// The host views of nix: the store, read-only, for the runs of a runtime and
// for installs; the daemon's socket directory for installs only.
var (
	StoreView  = executor.HostView{Path: "/nix/store"}
	DaemonView = executor.HostView{Path: DaemonSocketDir, Writable: true}
)

// Views are every host view runtimes need: those an executor must be able to show.
var Views = []executor.HostView{StoreView, DaemonView}

// nixDirs are searched for nix-shell after sandboxd's PATH: Debian's nix-bin,
// and the default profile of nix's own installer.
var nixDirs = []string{"/usr/bin", "/nix/var/nix/profiles/default/bin"}

// findNixShell returns the absolute path of nix-shell, one a box can see
// too: a directory that is a symlink (a nix profile) is resolved, so that the
// path lies in /nix/store, while nix-shell itself is not (nix picks its
// personality from the name it is called by).
func findNixShell() (string, error) {
	dirs := append(filepath.SplitList(os.Getenv("PATH")), nixDirs...)
	for _, dir := range dirs {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, "nix-shell")
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", dir, err)
		}
		return filepath.Join(real, "nix-shell"), nil
	}
	return "", spec.Errorf(spec.CodeNixUnavailable, "nix is not installed: no nix-shell in PATH or %v (run scripts/setup-nix.sh as root to install Debian's nix-bin and start its daemon)", nixDirs)
}

// Handshake words of the nix daemon's worker protocol.
const (
	workerMagic1 = 0x6e697863 // "cxin", client hello
	workerMagic2 = 0x6478696f // "oixd", daemon hello
)

// PingDaemon opens the nix daemon's socket and does the start of the worker
// protocol's handshake: it proves that a daemon answers, not only that a
// socket file exists. It returns the daemon's protocol version.
func PingDaemon(socket string, timeout time.Duration) (string, error) {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	var buf [16]byte
	binary.LittleEndian.PutUint64(buf[:8], workerMagic1)
	if _, err := c.Write(buf[:8]); err != nil {
		return "", fmt.Errorf("send hello: %w", err)
	}
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		return "", fmt.Errorf("read hello: %w", err)
	}
	if m := binary.LittleEndian.Uint64(buf[:8]); m != workerMagic2 {
		return "", fmt.Errorf("not a nix daemon: hello %#x", m)
	}
	v := binary.LittleEndian.Uint64(buf[8:])
	return fmt.Sprintf("%d.%d", v>>8, v&0xff), nil
}

// nixAvailable finds nix-shell and checks that the daemon answers.
func nixAvailable() (string, error) {
	shell, err := findNixShell()
	if err != nil {
		return "", err
	}
	if _, err := PingDaemon(DaemonSocket, 5*time.Second); err != nil {
		return "", spec.Errorf(spec.CodeNixUnavailable, "the nix daemon does not answer at %s: %v (start it: run scripts/setup-nix.sh as root)", DaemonSocket, err)
	}
	return shell, nil
}

// Check reports nix for `sandboxd check`. Neither finding is required:
// sandboxd works without nix, only install_package needs it.
func Check() []executor.Finding {
	shell, err := findNixShell()
	if err != nil {
		return []executor.Finding{{Name: "nix", Detail: err.Error() + " (needed only for install_package)"}}
	}
	out := []executor.Finding{{Name: "nix", OK: true, Detail: shell}}
	if v, err := PingDaemon(DaemonSocket, 5*time.Second); err != nil {
		out = append(out, executor.Finding{Name: "nix-daemon", Detail: fmt.Sprintf("%s: %v (run scripts/setup-nix.sh as root)", DaemonSocket, err)})
	} else {
		out = append(out, executor.Finding{Name: "nix-daemon", OK: true, Detail: fmt.Sprintf("%s answers, protocol %s", DaemonSocket, v)})
	}
	return out
}
