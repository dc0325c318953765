package isolate

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"sandboxd/executor"
	"sandboxd/executor/executortest"
	"sandboxd/spec"
)

// isolate box i runs as FirstUID+i: the uids of the box ids sandboxd may
// take are held host-wide, as the native backend holds --uid-base's.
func TestIsolateHoldsTheUIDsOfItsBoxIDs(t *testing.T) {
	firstUID := executortest.UIDs(9) - 40 // box ids from 40: the package's thousand
	f := newFakeIsolate(t, "1.10.1")
	cfg := Config{Path: f.path, StateDir: f.state, FirstUID: firstUID, FirstBox: 40, Dirs: spec.DefaultDirs, LockDir: f.locks}
	// Another instance holds the uid of box id 1039, the last one sandboxd may take.
	last := firstUID + 40 + executor.MaxBoxes - 1
	other, err := executor.LockUIDs(executor.UIDLockDir, last, 1, "/other/state")
	if err != nil {
		t.Fatal(err)
	}
	if x, err := New(cfg); err == nil {
		x.Close()
		t.Fatalf("isolate started on uids %d to %d, one of which another instance holds", firstUID+40, last)
	} else if want := "another sandboxd (pid " + strconv.Itoa(os.Getpid()) + ", state dir /other/state) holds uids " + strconv.Itoa(last); !strings.Contains(err.Error(), want) {
		t.Errorf("got %q, want it to say %q", err, want)
	}
	other.Release()
	x, err := New(cfg)
	if err != nil {
		t.Fatalf("the uids are free again: %v", err)
	}
	defer x.Close()
	if l, err := executor.LockUIDs(executor.UIDLockDir, firstUID+40, 1, "/other/state"); err == nil {
		l.Release()
		t.Errorf("the uid of isolate box 40 was not held")
	}
}
