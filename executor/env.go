package executor

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"sandboxd/spec"
)

// LookPath finds the file to execute inside the box: a name with a slash is a
// path (relative to /space); a bare name is searched in searchPath (a job's
// Path). isExec tells
// whether a path inside the box names an executable file; the native box
// asks from inside, the isolate backend from the host.
func LookPath(name, searchPath string, isExec func(boxPath string) bool) (string, error) {
	if strings.Contains(name, "/") {
		return spec.BoxPath(name), nil
	}
	for _, dir := range filepath.SplitList(searchPath) {
		if dir == "" {
			dir = "."
		}
		p := spec.BoxPath(path.Join(dir, name))
		if isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("no program %s in PATH %s", spec.Quote(name), spec.Quote(searchPath))
}

// IsExecutableFile tells whether p is a regular file with an execute bit.
func IsExecutableFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func envValue(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
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
