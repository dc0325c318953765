package runtimes

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEnv(t *testing.T) {
	captured := strings.Join([]string{
		"MYVAR=a \"quoted\" $dollar\nnewline=with equals",
		"PATH=.::/nix/store/abc-tool/bin:/usr/bin:relative:/bin",
		"out=/nix/store/x-rt", "dev=/nix/store/x-rt-dev", "outputs=out dev",
		"builder=/bin/sh", "name=rt", "system=x86_64-linux", "buildInputs=/nix/store/abc-tool",
		"NIX_BUILD_TOP=/tmp", "TMPDIR=/tmp", "SHLVL=1", "PWD=/space", "_=/bin/env", "HOME=/space",
		"IN_NIX_SHELL=pure", "NIX_STORE=/nix/store", "EMPTY=",
	}, "\x00") + "\x00"
	got, err := parseEnv([]byte(captured))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"MYVAR": "a \"quoted\" $dollar\nnewline=with equals",
		"PATH":  "/nix/store/abc-tool/bin:/usr/bin:/bin",
		"EMPTY": "",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseEnvDropsAnEmptyPath(t *testing.T) {
	got, err := parseEnv([]byte("PATH=.:\x00A=1\x00"))
	if err != nil {
		t.Fatal(err)
	}
	if _, has := got["PATH"]; has || got["A"] != "1" {
		t.Errorf("got %q, want only A=1", got)
	}
}

func TestParseEnvRejectsGarbage(t *testing.T) {
	if _, err := parseEnv([]byte("no equals sign\x00")); err == nil {
		t.Error("an entry without = was accepted")
	}
}
