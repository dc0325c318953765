package tests

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// `sandboxd check` checks the backend that --executor names, with the
// isolate that --isolate-path names.
func TestCheckPerBackend(t *testing.T) {
	// Its box takes the uids a sandboxd would.
	uids := "--uid-base=" + strconv.Itoa(takeUIDs(t))
	out, err := exec.Command(sandboxdBin, "check", uids).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok   namespaces") || !strings.Contains(string(out), "ok   box ") || strings.Contains(string(out), "isolate") {
		t.Errorf("check of the native backend (%v):\n%s", err, out)
	}
	out, err = exec.Command(sandboxdBin, "check", uids, "--executor=isolate", "--isolate-path=/nonexistent/isolate").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL isolate     /nonexistent/isolate is not found") || strings.Contains(string(out), "namespaces") {
		t.Errorf("check of the isolate backend with no isolate at --isolate-path (%v):\n%s", err, out)
	}
}
