package runtimes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	json "github.com/goccy/go-json"
)

// A runtime's store paths are garbage to nix unless rooted. sandboxd roots
// exactly the store paths its captured environment names (PATH entries,
// variables such as compiler flags) with `nix-store --add-root --indirect
// --realise`: the roots are symlinks in <gcroots>/<name>/<hash of the
// environment>/, registered in nix's gcroots/auto, and nix keeps their
// closures. The shell.nix itself is never evaluated on the host, where it
// would run as root.
//
// Roots are created before a row is stored and pruned after: whatever is
// not the directory of a stored row goes (prune), so that neither a failed
// install nor a killed sandboxd leaves roots behind for long.

// storePath matches a store path: /nix/store/, 32 characters of nix's
// base32, a dash and a name. It is compiled when an install first needs
// it, not at every start of sandboxd and of each box init (this binary too).
var storePath = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+`)
})

// storePaths lists the store paths named in env's values that exist.
func storePaths(env map[string]string) []string {
	seen := map[string]bool{}
	for _, v := range env {
		for _, p := range storePath().FindAllString(v, -1) {
			if _, err := os.Lstat(p); err == nil {
				seen[p] = true
			}
		}
	}
	paths := make([]string, 0, len(seen))
	for p := range seen {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}

// rootsDir is where the roots of a runtime with this environment live.
func (m *Manager) rootsDir(name string, env map[string]string) string {
	data, _ := json.Marshal(env) // maps marshal with sorted keys
	sum := sha256.Sum256(data)
	return filepath.Join(m.cfg.GCRootsDir, name, hex.EncodeToString(sum[:8]))
}

// addRoots roots the store paths env names, by nix-store on the host.
func (m *Manager) addRoots(ctx context.Context, nixShell, name string, env map[string]string) error {
	paths := storePaths(env)
	if len(paths) == 0 {
		return nil
	}
	dir := m.rootsDir(name, env)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("gc roots: %w", err)
	}
	nixStore := filepath.Join(filepath.Dir(nixShell), "nix-store")
	args := append([]string{"--add-root", filepath.Join(dir, "root"), "--indirect", "--realise"}, paths...)
	cmd := exec.CommandContext(ctx, nixStore, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + m.cfg.GCRootsDir, "NIX_CONFIG=" + m.cfg.NixConfig}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gc roots: nix-store --add-root: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// prune removes every roots directory that is not the one of a stored
// runtime. Callers hold m.rootsMu, so that no install's fresh roots are
// pruned before its row is stored.
func (m *Manager) prune(ctx context.Context) error {
	rts, err := m.cfg.Store.List(ctx)
	if err != nil {
		return fmt.Errorf("prune gc roots: %w", err)
	}
	keep := map[string]bool{}
	for _, rt := range rts {
		keep[m.rootsDir(rt.Name, rt.Environment)] = true
	}
	names, err := os.ReadDir(m.cfg.GCRootsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune gc roots: %w", err)
	}
	var errs []error
	for _, n := range names {
		nameDir := filepath.Join(m.cfg.GCRootsDir, n.Name())
		dirs, err := os.ReadDir(nameDir)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kept := 0
		for _, d := range dirs {
			if p := filepath.Join(nameDir, d.Name()); keep[p] {
				kept++
			} else if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
		}
		if kept == 0 {
			errs = append(errs, os.Remove(nameDir))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune gc roots: %w", err)
	}
	return nil
}
