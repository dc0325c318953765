package native

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"sandboxd/executor"
	"sandboxd/spec"
)

// A box init that dies in a group with an idleness limit, before the
// group's watch learnt when its program started, ends the group with an
// error: the watch no longer asks that box's init, which is gone (its
// socket closed), while another box keeps the group going.
func TestAGroupWhoseInitDiesBeforeItsStartIsKnownEndsWithAnError(t *testing.T) {
	n := testExecutor(t)
	boxes := make([]*box, 3)
	for i := range boxes {
		id := executor.DefaultBox
		if i > 0 {
			var err error
			if id, err = n.OpenBox(spec.BoxOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		boxes[i] = boxAfterARun(t, n, id)
	}
	// programs[0] sleeps, programs[1]'s init never starts its program and
	// is killed, programs[2] spins so that the group is never idle.
	job := func(argv ...string) *executor.Job {
		return executor.NewJob(&spec.RunRequest{Argv: argv, Limits: spec.Limits{CPUTime: new(30.0), Processes: new(int64(1))}}, executor.Runtime{})
	}
	sleeper, dying, spinner := boxes[0], boxes[1], boxes[2]
	g := &executor.Group{IdlenessTime: new(1.0), Members: []executor.GroupMember{
		{Box: sleeper.id, Job: job("/bin/sleep", "30")},
		{Box: dying.id, Job: job("/bin/sleep", "30")},
		{Box: spinner.id, Job: job("/bin/sh", "-c", "while :; do :; done")},
	}}
	if err := dying.initProc.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	sleeperInit := sleeper.initProc.Process
	type answer struct {
		res spec.GroupResult
		err error
	}
	done := make(chan answer, 1)
	go func() {
		res, err := n.RunGroup(context.Background(), g)
		done <- answer{res, err}
	}()
	// The watch first looks at 1 s: it learns the sleeper's start, then
	// waits for the stopped init's answer. The sleeper's init stops too, so
	// that the group lasts (its kill is not heard) until it goes on.
	time.Sleep(1500 * time.Millisecond)
	if err := sleeperInit.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := dying.initProc.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // the watch looks again meanwhile
	if err := sleeperInit.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the group did not end")
	}
	if a.err == nil || !strings.Contains(a.err.Error(), "programs[1]: ") || !strings.Contains(a.err.Error(), errInitGone.Error()) {
		t.Errorf("the group: %+v, %v; want an error for programs[1], whose init is gone", a.res, a.err)
	}
	for _, b := range boxes {
		if res, err := runTrue(n, b.id); err != nil || res.Verdict != spec.VerdictOK {
			t.Errorf("a run in box %d after the group: %+v, %v", b.id, res, err)
		}
	}
}
