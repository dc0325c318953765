package runtimes

import (
	"bytes"
	"fmt"
	"path"
	"strings"
)

// dropped are the variables a captured environment does not keep: those
// nix-shell sets for itself or for a build (its temporary directories, its
// shell's bookkeeping), those sandboxd set for the capture, and the plumbing
// of a derivation (its name, builder, outputs and input lists), which tells a
// program nothing and would only shadow names a run might use. Everything
// else stays, above all what the shell.nix and its stdenv's setup export
// (PATH, compiler flags, the shell.nix's own attributes).
var dropped = []string{
	// nix-shell and its shell
	"NIX_BUILD_CORES", "NIX_BUILD_TOP", "NIX_STORE", "NIX_LOG_FD", "NIX_ENFORCE_PURITY",
	"TMP", "TEMP", "TMPDIR", "TEMPDIR", "IN_NIX_SHELL", "SHLVL", "PWD", "OLDPWD", "_", "__ETC_PROFILE_SOURCED",
	// set by sandboxd for the capture
	"HOME", "NIX_REMOTE", "NIX_CONFIG", "NIX_BUILD_SHELL",
	// derivation plumbing (builtins.derivation and stdenv.mkDerivation)
	"out", "outputs", "builder", "system", "name", "stdenv", "shellHook", "passAsFile",
	"buildInputs", "nativeBuildInputs", "propagatedBuildInputs", "propagatedNativeBuildInputs",
	"depsBuildBuild", "depsBuildBuildPropagated", "depsBuildTarget", "depsBuildTargetPropagated",
	"depsHostHost", "depsHostHostPropagated", "depsTargetTarget", "depsTargetTargetPropagated",
	"NIX_ATTRS_JSON_FILE", "NIX_ATTRS_SH_FILE",
}

// parseEnv turns the output of `env -0` into the environment a runtime keeps:
// nix-shell's own variables dropped (see dropped; also each output named in
// `outputs`), and PATH without the relative entries ("", ".") nix-shell puts
// there, which would make a run search its working directory.
func parseEnv(data []byte) (map[string]string, error) {
	env := map[string]string{}
	for _, entry := range bytes.Split(data, []byte{0}) {
		if len(entry) == 0 {
			continue
		}
		k, v, ok := strings.Cut(string(entry), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("captured environment: entry %q is not NAME=value", entry)
		}
		env[k] = v
	}
	for _, o := range strings.Fields(env["outputs"]) {
		delete(env, o)
	}
	for _, k := range dropped {
		delete(env, k)
	}
	if p, ok := env["PATH"]; ok {
		var keep []string
		for _, dir := range strings.Split(p, ":") {
			if path.IsAbs(dir) {
				keep = append(keep, dir)
			}
		}
		if len(keep) == 0 {
			delete(env, "PATH")
		} else {
			env["PATH"] = strings.Join(keep, ":")
		}
	}
	return env, nil
}
