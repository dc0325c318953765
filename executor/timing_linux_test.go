package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (path → content) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// This host has no SMT, no cpufreq and no swap, so the warnings are shown
// on sysfs and /proc/swaps as a laptop's would read.
func TestCheckTimingWarns(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"cpu/online":                             "0-3\n",
		"cpu/smt/active":                         "1\n",
		"cpu/cpu0/topology/thread_siblings_list": "0,2\n",
		"cpu/cpu1/topology/thread_siblings_list": "1,3\n",
		"cpu/cpu2/topology/thread_siblings_list": "0,2\n",
		"cpu/cpu3/topology/thread_siblings_list": "1,3\n",
		"cpu/cpu0/cpufreq/scaling_governor":      "powersave\n",
		"cpu/cpu1/cpufreq/scaling_governor":      "performance\n",
		"cpu/cpu2/cpufreq/scaling_governor":      "schedutil\n",
		"cpu/cpu3/cpufreq/scaling_governor":      "powersave\n",
		"cpu/intel_pstate/no_turbo":              "0\n",
		"swaps":                                  "Filename\tType\tSize\tUsed\tPriority\n/dev/nvme0n1p3 partition\t8388604\t0\t-2\n",
	})
	sys, swaps := filepath.Join(dir, "cpu"), filepath.Join(dir, "swaps")
	expect := func(what string, got []Finding, want map[string]string) {
		t.Helper()
		for _, f := range got {
			w, ok := want[f.Name]
			if !ok {
				continue
			}
			delete(want, f.Name)
			if f.Required || !f.Warn || (w == "") != f.OK || !strings.Contains(f.Detail, w) {
				t.Errorf("%s: %s: %+v; want a warning saying %q", what, f.Name, f, w)
			}
		}
		for name := range want {
			t.Errorf("%s: no finding %s", what, name)
		}
	}
	expect("--cpus 0-3", checkTiming(sys, swaps, []int{0, 1, 2, 3}), map[string]string{
		"smt":      "--cpus has SMT siblings, threads of one core: 0 and 2, 1 and 3",
		"governor": "powersave on CPU 0,3, schedutil on CPU 2, not performance",
		"turbo":    "Intel turbo is on",
		"swap":     "swap is on (/dev/nvme0n1p3)",
	})
	// One thread of each core, at the performance governor: only the host-wide ones.
	expect("--cpus 1", checkTiming(sys, swaps, []int{1}), map[string]string{"smt": "", "governor": "", "turbo": "Intel turbo", "swap": "swap is on"})
	expect("without --cpus", checkTiming(sys, swaps, nil), map[string]string{"smt": "SMT is on", "governor": "powersave on CPU 0,3"})

	writeTree(t, dir, map[string]string{"cpu/intel_pstate/no_turbo": "1\n", "cpu/cpufreq/boost": "1\n", "swaps": "Filename\tType\tSize\tUsed\tPriority\n"})
	expect("boost", checkTiming(sys, swaps, []int{1}), map[string]string{"turbo": "frequency boost is on", "swap": ""})
	writeTree(t, dir, map[string]string{"cpu/cpufreq/boost": "0\n", "cpu/cpu1/cpufreq/boost": "1\n"})
	expect("boost of a policy", checkTiming(sys, swaps, []int{1}), map[string]string{"turbo": "frequency boost is on for CPU 1"})
}

// On this host: whatever it has, a finding of each, never required.
func TestCheckTimingHere(t *testing.T) {
	got := CheckTiming(nil)
	if len(got) != 4 {
		t.Fatalf("CheckTiming: %+v", got)
	}
	for _, f := range got {
		if f.Required || !f.Warn || f.Detail == "" {
			t.Errorf("%+v", f)
		}
	}
}
