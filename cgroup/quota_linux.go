package cgroup

import (
	"math"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// CPUQuota is the CPU bandwidth this process's cgroup may use, in CPUs: the
// tightest CFS quota/period of its cgroup and the ancestors it sees (a
// container's limits.cpu, a unit's CPUQuota=); ok is false without one.
// A quota, unlike a cpuset, leaves runtime.NumCPU as it is.
func CPUQuota() (cpus float64, ok bool) {
	procCgroup, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	return cpuQuota(Mount, procCgroup)
}

// cpuQuota reads the quota below mount, the cgroupfs, for the process whose
// /proc/self/cgroup is procCgroup: on v2 cpu.max ("max 100000" or
// "150000 100000"), on v1 the cpu hierarchy's cpu.cfs_quota_us (-1 for none)
// and cpu.cfs_period_us. Cgroups the process does not see (a v1 container
// sees its own cgroup as the hierarchy's root) are skipped.
func cpuQuota(mount string, procCgroup []byte) (cpus float64, ok bool) {
	cpus = math.Inf(1)
	for _, line := range strings.Split(string(procCgroup), "\n") {
		fields := strings.SplitN(line, ":", 3)
		if len(fields) != 3 {
			continue
		}
		var dir string
		var read func(dir string) (float64, bool)
		switch {
		case fields[0] == "0" && fields[1] == "":
			dir, read = mount, v2Quota
		case strings.Contains(","+fields[1]+",", ",cpu,"):
			dir, read = filepath.Join(mount, fields[1]), v1Quota
		default:
			continue
		}
		for p := path.Clean("/" + fields[2]); ; p = path.Dir(p) {
			if q, found := read(filepath.Join(dir, p)); found && q < cpus {
				cpus, ok = q, true
			}
			if p == "/" {
				break
			}
		}
	}
	return cpus, ok
}

func v2Quota(dir string) (float64, bool) {
	data, err := os.ReadFile(filepath.Join(dir, "cpu.max"))
	if err != nil {
		return 0, false
	}
	quota, period, _ := strings.Cut(strings.TrimSpace(string(data)), " ")
	return ratio(quota, period)
}

func v1Quota(dir string) (float64, bool) {
	quota, err1 := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us"))
	period, err2 := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us"))
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return ratio(strings.TrimSpace(string(quota)), strings.TrimSpace(string(period)))
}

// ratio is quota/period in CPUs, for a quota that is a positive number.
func ratio(quota, period string) (float64, bool) {
	q, err1 := strconv.ParseFloat(quota, 64)
	p, err2 := strconv.ParseFloat(period, 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0, false
	}
	return q / p, true
}
