package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Pinning (--cpus): every run is given CPUs of its own, and a cpuset group
// holds it to them, so that sched_setaffinity cannot take a program off
// them (the kernel intersects any mask with its cpuset's CPUs, and refuses
// a mask without one of them). On cgroup v2 the run's own cgroup is the
// cpuset: the program is born in it. On cgroup v1 the program is born in the
// box's groups, where the init lives: the box has a cpuset group too, set to
// the run's CPUs before each run (which moves the idle init's threads along).

// onlineCPUs is the kernel's list of the CPUs that run tasks.
const onlineCPUs = "/sys/devices/system/cpu/online"

// ParseCPUList reads a CPU list as the kernel writes them ("0-3,8,10-11")
// and returns the CPUs in order. Ranges must go up; no CPU may be named twice.
func ParseCPUList(s string) ([]int, error) {
	var cpus []int
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := parseCPU(lo)
		last := first
		if err == nil && isRange {
			last, err = parseCPU(hi)
		}
		if err != nil {
			return nil, fmt.Errorf("%q in CPU list %q: %w", part, s, err)
		}
		if last < first {
			return nil, fmt.Errorf("%q in CPU list %q: the range goes down", part, s)
		}
		for c := first; c <= last; c++ {
			if slices.Contains(cpus, c) {
				return nil, fmt.Errorf("CPU list %q names CPU %d twice", s, c)
			}
			cpus = append(cpus, c)
		}
	}
	slices.Sort(cpus)
	return cpus, nil
}

// maxCPU bounds a CPU number: the kernel's own bound (NR_CPUS) is at most 8192.
const maxCPU = 8191

func parseCPU(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strings.TrimSpace(s) != s || strings.HasPrefix(s, "+") {
		return 0, fmt.Errorf("not a CPU number (the form is 0-3,8)")
	}
	if n > maxCPU {
		return 0, fmt.Errorf("CPU %d is past the kernel's bound of %d", n, maxCPU)
	}
	return n, nil
}

// FormatCPUList writes CPUs in order as a CPU list, ranges joined ("0-3,8").
func FormatCPUList(cpus []int) string {
	cpus = slices.Sorted(slices.Values(cpus))
	var parts []string
	for i := 0; i < len(cpus); {
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, strconv.Itoa(cpus[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", cpus[i], cpus[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// CheckCPUs tells whether runs can be pinned to cpus: each must be online
// and in the cpuset where sandboxd's groups go (allowed, as read from the
// file where); the error names each that is not, and what the host has.
func CheckCPUs(cpus, online, allowed []int, where string) error {
	var errs []error
	var offline, outside []int
	for _, c := range cpus {
		switch {
		case !slices.Contains(online, c):
			offline = append(offline, c)
		case !slices.Contains(allowed, c):
			outside = append(outside, c)
		}
	}
	if len(offline) > 0 {
		errs = append(errs, fmt.Errorf("--cpus: CPU %s not online (the host's online CPUs: %s, in %s)", FormatCPUList(offline), FormatCPUList(online), onlineCPUs))
	}
	if len(outside) > 0 {
		errs = append(errs, fmt.Errorf("--cpus: CPU %s outside the cpuset where sandboxd's groups go (%s: %s)", FormatCPUList(outside), where, FormatCPUList(allowed)))
	}
	return errors.Join(errs...)
}

func readCPUList(file string) ([]int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	cpus, err := ParseCPUList(string(data))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return cpus, nil
}

// checkHostCPUs checks cpus against the host's online CPUs and the cpuset
// file allowedFile of the group the instance's groups go in.
func checkHostCPUs(cpus []int, allowedFile string) error {
	online, err := readCPUList(onlineCPUs)
	if err != nil {
		return err
	}
	allowed, err := readCPUList(allowedFile)
	if err != nil {
		return fmt.Errorf("--cpus: the cpuset where sandboxd's groups go: %w", err)
	}
	return CheckCPUs(cpus, online, allowed, allowedFile)
}

// CheckPinning tells, changing nothing, whether runs can be pinned to
// opts.CPUs here, and where their cpuset groups go.
func CheckPinning(opts PlaceOptions) (string, error) {
	v2, _, err := Detect()
	if v2 {
		var p Placement
		if p, err = PlaceV2Here(opts); err != nil {
			return "", err
		}
		return "cgroup v2, a cpuset per run beneath " + p.Base, checkHostCPUs(opts.CPUs, p.cpusetFile())
	}
	if err != nil {
		return "", err
	}
	if err := checkV1Cpuset(opts.CPUs); err != nil {
		return "", err
	}
	return "cgroup v1, a cpuset per box in " + v1CpusetMount, nil
}

// v1CpusetMount is cgroup v1's cpuset hierarchy.
var v1CpusetMount = filepath.Join(Mount, "cpuset")

// newV1Cpuset makes the instance's group in cgroup v1's cpuset hierarchy,
// holding cpus, after checking them.
func newV1Cpuset(name string, cpus []int) (string, error) {
	if err := checkV1Cpuset(cpus); err != nil {
		return "", err
	}
	dir := filepath.Join(v1CpusetMount, name) // a stale one is gone (NewInstance)
	if err := newV1CpusetGroup(dir, FormatCPUList(cpus)); err != nil {
		removeTree(dir)
		return "", err
	}
	return dir, nil
}

// checkV1Cpuset checks that cgroup v1's cpuset hierarchy is there and holds cpus.
func checkV1Cpuset(cpus []int) error {
	var st unix.Statfs_t
	if err := unix.Statfs(v1CpusetMount, &st); err != nil || st.Type != unix.CGROUP_SUPER_MAGIC || !exists(filepath.Join(v1CpusetMount, "cpuset.cpus")) {
		return fmt.Errorf("--cpus needs the cgroup v1 cpuset hierarchy at %s, which is not mounted (mount -t cgroup -o cpuset cpuset %[1]s)", v1CpusetMount)
	}
	return checkHostCPUs(cpus, filepath.Join(v1CpusetMount, "cpuset.effective_cpus"))
}

// newV1CpusetGroup makes a cpuset group of cgroup v1 with the CPUs cpus
// and its parent's memory nodes: v1 takes no task in a cpuset without both.
func newV1CpusetGroup(dir, cpus string) error {
	mems, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "cpuset.mems"))
	if err != nil {
		return fmt.Errorf("read the memory nodes of %s: %w", filepath.Dir(dir), err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if err := writeControl(dir, "cpuset.mems", strings.TrimSpace(string(mems))); err != nil {
		return err
	}
	return writeControl(dir, "cpuset.cpus", cpus)
}

// pinnedV1Box is a cgroup v1 box whose runs are pinned: its init lives in a
// cpuset group of the box, whose CPUs are the run's from Begin on.
type pinnedV1Box struct {
	Box
	dir  string
	cpus *os.File // cpuset.cpus of dir
	set  string   // what it holds
}

func newPinnedV1Box(acct Box, base, name string, initPid int, cpus []int) (b *pinnedV1Box, err error) {
	b = &pinnedV1Box{Box: acct, dir: filepath.Join(base, name), set: FormatCPUList(cpus)}
	defer func() {
		if err != nil {
			b.Remove()
		}
	}()
	if err := removeTree(b.dir); err != nil {
		return nil, err
	}
	if err := newV1CpusetGroup(b.dir, b.set); err != nil {
		return nil, err
	}
	if err := writeControl(b.dir, "cgroup.procs", strconv.Itoa(initPid)); err != nil {
		return nil, err
	}
	if b.cpus, err = openControl(filepath.Join(b.dir, "cpuset.cpus"), os.O_RDWR); err != nil {
		return nil, fmt.Errorf("open cpuset.cpus: %w", err)
	}
	return b, nil
}

func (b *pinnedV1Box) Begin(l Limits) ([]*os.File, error) {
	if len(l.CPUs) == 0 {
		return nil, fmt.Errorf("a run in a pinned box names no CPU")
	}
	// A box's consecutive runs mostly get the same CPU: no write then.
	if s := FormatCPUList(l.CPUs); s != b.set {
		if err := writeAt(b.cpus, s); err != nil {
			return nil, err
		}
		b.set = s
	}
	return b.Box.Begin(l)
}

func (b *pinnedV1Box) Remove() error {
	if b.cpus != nil {
		b.cpus.Close()
	}
	var err error
	if b.Box != nil {
		err = b.Box.Remove()
	}
	return errors.Join(err, removeTree(b.dir))
}
