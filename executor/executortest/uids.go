package executortest

import (
	"os"
	"strconv"

	"sandboxd/executor"
)

// UIDs gives a package's tests uids of their own. A test run owns the
// thousands of uids from SANDBOXD_TEST_UID_BASE (sandboxd's default 60000
// when unset) that no account of the host uses (sandboxd refuses those:
// 65000-65999 holds nobody): test runs that share a machine are 11000
// apart, and a sandboxd holds its thousand uids host-wide. The thousands
// are shared out so that packages tested at once never meet: 0 to 7 go to
// the instances of tests/ alive at once, 8 to executor/native's, 9 to
// executor/isolate's.
func UIDs(slot int) int {
	base, err := strconv.Atoi(os.Getenv("SANDBOXD_TEST_UID_BASE"))
	if err != nil {
		base = 60000
	}
	for first := base; first < base+100*executor.MaxBoxes; first += executor.MaxBoxes {
		if executor.CheckUIDRange(first, executor.MaxBoxes) != nil {
			continue
		}
		if slot == 0 {
			return first
		}
		slot--
	}
	panic("no thousand of uids free of the host's accounts from SANDBOXD_TEST_UID_BASE")
}
