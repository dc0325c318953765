package cgroup

import (
	"slices"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	for in, want := range map[string][]int{
		"2-7":       {2, 3, 4, 5, 6, 7},
		"0,2,4-5":   {0, 2, 4, 5},
		"5,1":       {1, 5},
		"3":         {3},
		"0-0":       {0},
		" 0-1\n":    {0, 1}, // as the kernel's files end
		"8191":      {8191},
		"1,3-4,6-8": {1, 3, 4, 6, 7, 8},
	} {
		got, err := ParseCPUList(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", in, got, err, want)
		}
		if err == nil && FormatCPUList(got) != FormatCPUList(want) {
			t.Errorf("FormatCPUList(%v) = %q", got, FormatCPUList(got))
		}
	}
	for in, why := range map[string]string{
		"a-b":   "not a CPU number",
		"9999":  "past the kernel's bound",
		"3-1":   "goes down",
		"1,1":   "twice",
		"0-2,1": "twice",
		"1,":    "not a CPU number",
		"-1":    "not a CPU number",
		"+1":    "not a CPU number",
		"1 ,2":  "not a CPU number",
		"1-2-3": "not a CPU number",
	} {
		if got, err := ParseCPUList(in); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want an error saying %q", in, got, err, why)
		}
	}
	if got := FormatCPUList([]int{7, 0, 1, 2, 4, 5}); got != "0-2,4-5,7" {
		t.Errorf("FormatCPUList: %q", got)
	}
}

// CPUs offline or outside the cpuset where the groups go are refused, each
// named; this host's CPUs cannot be taken offline for a test.
func TestCheckCPUs(t *testing.T) {
	online, allowed := []int{0, 1, 2, 3}, []int{0, 1}
	if err := CheckCPUs([]int{0, 1}, online, allowed, "/cg/cpuset.cpus.effective"); err != nil {
		t.Errorf("CPUs online and allowed: %v", err)
	}
	err := CheckCPUs([]int{1, 2, 3, 5, 6}, online, allowed, "/cg/cpuset.cpus.effective")
	for _, want := range []string{"CPU 5-6 not online (the host's online CPUs: 0-3", "CPU 2-3 outside the cpuset where sandboxd's groups go (/cg/cpuset.cpus.effective: 0-1)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CPUs offline and outside: %v; want it to say %q", err, want)
		}
	}
}
