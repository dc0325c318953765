package executor

import (
	"os"
	"path/filepath"
	"strings"

	"sandboxd/spec"
)

// checkDirsApart refuses shown directories that contain the state dir or
// lie inside it. A directory is shown with every mount below it, and the
// state dir holds every box's /space and /tmp: a box that showed it would
// read what the other boxes hold (submissions, tests, outputs). Paths are
// compared resolved (symlinks, ..), as a bind mount resolves them.
//
// A directory can also be reached by another path (a bind mount of it or of
// a parent): the two are compared as files too, each against the other's
// ancestors.
func checkDirsApart(dirs []string, stateDir string) error {
	state := resolvePath(stateDir)
	for _, d := range dirs {
		shown := resolvePath(d)
		if !PathWithin(state, shown) && !PathWithin(shown, state) && !sameAsAncestor(shown, state) && !sameAsAncestor(state, shown) {
			continue
		}
		if shown != d {
			d += " (" + shown + ")"
		}
		return spec.Errorf(spec.CodeInvalidArgument, "dirs: %s would show the state dir %s, which holds every box's files", d, state)
	}
	return nil
}

// sameAsAncestor tells whether directory dir is, as a file, p or one of p's
// ancestors.
func sameAsAncestor(dir, p string) bool {
	d, err := os.Stat(dir)
	if err != nil {
		return false
	}
	for {
		if fi, err := os.Stat(p); err == nil && os.SameFile(d, fi) {
			return true
		}
		parent := filepath.Dir(p)
		if parent == p {
			return false
		}
		p = parent
	}
}

// resolvePath resolves the symlinks of absolute path p as far as it exists;
// what does not exist yet is kept as written.
func resolvePath(p string) string {
	p = filepath.Clean(p)
	rest := ""
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

// PathWithin tells whether clean absolute path p is dir or lies below it.
func PathWithin(dir, p string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}
