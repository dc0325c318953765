package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// A box's run groups: the one prepared is kept until a run takes it (a
// Begin that fails before, as the pinned box's write of its CPUs can, must
// not leave it behind when the next Prepare comes), and between runs a box
// holds its last run's group and the next run's, no other; Remove leaves none.
func TestABoxHoldsItsLastRunsGroupAndTheNextOnly(t *testing.T) {
	init := exec.Command("sleep", "60") // stands for the box's init
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { init.Process.Kill(); init.Wait() }()
	cg, err := NewInstance(fmt.Sprintf("sandboxd-test-runs-%d", os.Getpid()), PlaceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Remove()
	acct, err := cg.NewBox("box0", init.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var dir string
	switch b := acct.(type) {
	case *v1Box:
		dir = b.dir("memory")
	case *v2Box:
		dir = b.dir
	}
	runGroups := func() []string {
		found, err := filepath.Glob(filepath.Join(dir, "run*"))
		if err != nil {
			t.Fatal(err)
		}
		return found
	}
	for i := range 2 { // the second, as after a Begin that failed early
		if err := acct.Prepare(); err != nil {
			t.Fatal(err)
		}
		if got := runGroups(); len(got) != 1 {
			t.Fatalf("run groups after %d Prepare with no run: %v, want one", i+1, got)
		}
	}
	for range 3 {
		files, err := acct.Begin(Limits{Processes: 4, Memory: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		closeAll(files)
		if err := acct.Prepare(); err != nil { // beside the run, as a box does
			t.Fatal(err)
		}
		if _, err := acct.End(); err != nil {
			t.Fatal(err)
		}
		if got := runGroups(); len(got) != 2 {
			t.Errorf("run groups between runs: %v, want the last run's and the next's", got)
		}
	}
	if err := acct.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := runGroups(); len(got) != 0 {
		t.Errorf("run groups after Remove: %v", got)
	}
}
