package executortest

import (
	"os"
	"strconv"
)

// UIDs gives a package's tests uids of their own. A test run owns the ten
// thousand uids from SANDBOXD_TEST_UID_BASE (sandboxd's default 60000 when
// unset): test runs that share a machine are 10000 apart, and a sandboxd
// holds its thousand uids host-wide. Their thousands are shared out so that
// packages tested at once never meet: 0 to 7 go to the instances of
// tests/ alive at once, 8 to executor/native's, 9 to executor/isolate's.
func UIDs(thousand int) int {
	base, err := strconv.Atoi(os.Getenv("SANDBOXD_TEST_UID_BASE"))
	if err != nil {
		base = 60000
	}
	return base + 1000*thousand
}
