package executor

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MinUID is the lowest uid a box may run as: below it are root and the
// system's accounts (Debian: 0-999), which own host files and daemons.
const MinUID = 1000

// maxUID is the highest valid uid: (uid_t)-1 means "no change" to the
// kernel.
const maxUID = 1<<32 - 2

// CheckUIDRange refuses box uids [first, first+count) that a box must not
// run as: root and the system's accounts, invalid ids, and any uid or gid
// that the host's /etc/passwd or /etc/group names (a box would share that
// account's RLIMIT_NPROC count, its signals and its files). Accounts from
// elsewhere (LDAP, NSS modules) are not seen: the range must be kept apart
// from them by the operator.
func CheckUIDRange(first, count int) error {
	last := first + count - 1
	if first < MinUID || first > maxUID-count+1 { // not last > maxUID: first+count may wrap
		return fmt.Errorf("uids %d to %d: box uids must lie between %d and %d (below %d are root and the system's accounts)", first, last, MinUID, maxUID, MinUID)
	}
	var taken []string
	for _, db := range []struct{ file, kind string }{{"/etc/passwd", "user"}, {"/etc/group", "group"}} {
		names, err := accountsIn(db.file, first, last)
		if err != nil {
			return err
		}
		for _, name := range names {
			taken = append(taken, db.kind+" "+name)
		}
	}
	if len(taken) > 0 {
		return fmt.Errorf("uids %d to %d include the host's %s: a box would act as them; choose a --uid-base whose %d uids no account of the host uses", first, last, strings.Join(taken, ", "), count)
	}
	return nil
}

// accountsIn names the entries of a passwd or group file whose id (the
// third field) lies in [first, last], as "name (id)". A missing file names
// none.
func accountsIn(file string, first, last int) ([]string, error) {
	f, err := os.Open(file)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the host's accounts: %w", err)
	}
	defer f.Close()
	var names []string
	lines := bufio.NewScanner(f)
	for lines.Scan() {
		fields := strings.Split(lines.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if id, err := strconv.Atoi(fields[2]); err == nil && id >= first && id <= last {
			names = append(names, fmt.Sprintf("%s (%d)", fields[0], id))
		}
	}
	if err := lines.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return names, nil
}
