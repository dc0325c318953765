package executor

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"sandboxd/cgroup"
)

// CheckTiming warns, as isolate's isolate-check-environment does, of what
// makes a program's CPU time vary from run to run on this host: SMT
// siblings among the CPUs runs use, a frequency governor other than
// performance, turbo or boost, and swap. cpus are the CPUs of --cpus; nil:
// runs may use every online CPU. Nothing here keeps sandboxd from working.
func CheckTiming(cpus []int) []Finding {
	return checkTiming("/sys/devices/system/cpu", "/proc/swaps", cpus)
}

func checkTiming(sysCPU, swaps string, cpus []int) []Finding {
	pinned := len(cpus) > 0
	if !pinned {
		cpus = readCPUs(filepath.Join(sysCPU, "online"))
	}
	return []Finding{checkSMT(sysCPU, cpus, pinned), checkGovernor(sysCPU, cpus), checkBoost(sysCPU, cpus), checkSwap(swaps)}
}

// Warning is a finding about fairness of timing, not about whether sandboxd works.
func Warning(name string, ok bool, detail string) Finding {
	return Finding{Name: name, OK: ok, Detail: detail, Warn: true}
}

func checkSMT(sysCPU string, cpus []int, pinned bool) Finding {
	if !pinned {
		if active, _ := os.ReadFile(filepath.Join(sysCPU, "smt", "active")); strings.TrimSpace(string(active)) == "1" {
			return Warning("smt", false, "SMT is on: two runs may share a core and slow each other; pin runs with --cpus, one CPU per core (or turn SMT off: echo off > "+filepath.Join(sysCPU, "smt", "control")+")")
		}
		return Warning("smt", true, "no CPU shares a core with another")
	}
	var pairs []string
	for _, c := range cpus {
		for _, s := range readCPUs(filepath.Join(sysCPU, fmt.Sprintf("cpu%d", c), "topology", "thread_siblings_list")) {
			if s > c && slices.Contains(cpus, s) {
				pairs = append(pairs, fmt.Sprintf("%d and %d", c, s))
			}
		}
	}
	if len(pairs) > 0 {
		return Warning("smt", false, "--cpus has SMT siblings, threads of one core: "+strings.Join(pairs, ", ")+"; runs on them slow each other: keep one CPU per core in --cpus")
	}
	return Warning("smt", true, "no two CPUs of --cpus share a core")
}

func checkGovernor(sysCPU string, cpus []int) Finding {
	others := map[string][]int{}
	scaled := 0
	for _, c := range cpus {
		g, err := os.ReadFile(filepath.Join(sysCPU, fmt.Sprintf("cpu%d", c), "cpufreq", "scaling_governor"))
		if err != nil {
			continue
		}
		scaled++
		if g := strings.TrimSpace(string(g)); g != "performance" {
			others[g] = append(others[g], c)
		}
	}
	if len(others) > 0 {
		var s []string
		for _, g := range slices.Sorted(maps.Keys(others)) {
			s = append(s, fmt.Sprintf("%s on CPU %s", g, cgroup.FormatCPUList(others[g])))
		}
		return Warning("governor", false, "frequency governor "+strings.Join(s, ", ")+", not performance: a CPU's speed then changes with its load (for c in "+filepath.Join(sysCPU, "cpu*", "cpufreq", "scaling_governor")+"; do echo performance > $c; done)")
	}
	if scaled == 0 {
		return Warning("governor", true, "no frequency scaling in this kernel (no cpufreq; a virtual machine's host may scale)")
	}
	return Warning("governor", true, "performance")
}

func checkBoost(sysCPU string, cpus []int) Finding {
	noTurbo := filepath.Join(sysCPU, "intel_pstate", "no_turbo")
	if v, err := os.ReadFile(noTurbo); err == nil && strings.TrimSpace(string(v)) == "0" {
		return Warning("turbo", false, "Intel turbo is on: a CPU's speed then depends on how busy the others are and how warm (echo 1 > "+noTurbo+")")
	}
	boost := filepath.Join(sysCPU, "cpufreq", "boost")
	if v, err := os.ReadFile(boost); err == nil && strings.TrimSpace(string(v)) == "1" {
		return Warning("turbo", false, "frequency boost is on: a CPU's speed then depends on how busy the others are and how warm (echo 0 > "+boost+")")
	}
	var boosted []int
	for _, c := range cpus {
		if v, err := os.ReadFile(filepath.Join(sysCPU, fmt.Sprintf("cpu%d", c), "cpufreq", "boost")); err == nil && strings.TrimSpace(string(v)) == "1" {
			boosted = append(boosted, c)
		}
	}
	if len(boosted) > 0 {
		return Warning("turbo", false, "frequency boost is on for CPU "+cgroup.FormatCPUList(boosted)+" (echo 0 > "+filepath.Join(sysCPU, "cpuN", "cpufreq", "boost")+")")
	}
	return Warning("turbo", true, "no turbo or boost")
}

func checkSwap(swaps string) Finding {
	data, err := os.ReadFile(swaps)
	if err != nil {
		return Warning("swap", false, "cannot tell whether swap is on: "+err.Error())
	}
	var on []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] { // a header first
		if f := strings.Fields(line); len(f) > 0 {
			on = append(on, f[0])
		}
	}
	if len(on) > 0 {
		return Warning("swap", false, "swap is on ("+strings.Join(on, " ")+"): runs never swap (their memory limit has no swap), but sandboxd, the judge and the boxes' files may, and runs then wait for them (swapoff -a)")
	}
	return Warning("swap", true, "off")
}

// readCPUs reads a kernel CPU list file ("0-3,8"); nil when it cannot.
func readCPUs(file string) []int {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	cpus, _ := cgroup.ParseCPUList(string(data))
	return cpus
}
