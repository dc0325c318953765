package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCPUQuota(t *testing.T) {
	write := func(t *testing.T, root, file, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, file)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name   string
		files  map[string]string
		proc   string
		cpus   float64
		hasOne bool
	}{
		{"v2 without cpu.max", map[string]string{"judge.slice/cgroup.procs": ""}, "0::/judge.slice\n", 0, false},
		{"v2 max", map[string]string{"judge.slice/cpu.max": "max 100000\n"}, "0::/judge.slice\n", 0, false},
		{"v2 own", map[string]string{"a/b/cpu.max": "150000 100000\n"}, "0::/a/b\n", 1.5, true},
		{"v2 the tightest ancestor", map[string]string{"a/cpu.max": "200000 100000\n", "a/b/cpu.max": "max 100000\n", "a/b/c/cpu.max": "300000 100000\n"}, "0::/a/b/c\n", 2, true},
		{"v2 a container's root", map[string]string{"cpu.max": "50000 100000\n"}, "0::/\n", 0.5, true},
		{"v1 cpu,cpuacct", map[string]string{"cpu,cpuacct/docker/x/cpu.cfs_quota_us": "300000\n", "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n"}, "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n", 3, true},
		{"v1 no quota", map[string]string{"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/\n", 0, false},
		{"v1 a container sees its cgroup as the root", map[string]string{"cpu,cpuacct/cpu.cfs_quota_us": "100000\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, "4:cpu,cpuacct:/docker/x\n", 1, true},
		{"v1 cpuacct alone is not cpu", map[string]string{"cpuacct/cpu.cfs_quota_us": "100000\n", "cpuacct/cpu.cfs_period_us": "100000\n"}, "4:cpuacct:/\n", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for file, content := range c.files {
				write(t, root, file, content)
			}
			cpus, ok := cpuQuota(root, []byte(c.proc))
			if ok != c.hasOne || ok && cpus != c.cpus {
				t.Errorf("cpuQuota = %v, %v; want %v, %v", cpus, ok, c.cpus, c.hasOne)
			}
		})
	}
}
