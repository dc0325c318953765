package cgroup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeCgroupfs is a directory laid out as a cgroup2 hierarchy: each cgroup
// (a path such as "/a/b", "/" for the mount's root) with its processes;
// the host's root cgroup is the one without cgroup.type.
type fakeCgroupfs struct {
	t     *testing.T
	mount string
}

func newFakeCgroupfs(t *testing.T) *fakeCgroupfs {
	return &fakeCgroupfs{t: t, mount: t.TempDir()}
}

// group makes a cgroup with the given processes and controllers.
func (f *fakeCgroupfs) group(rel string, root bool, controllers string, pids ...string) {
	dir := filepath.Join(f.mount, rel)
	files := map[string]string{
		"cgroup.procs":       strings.Join(pids, "\n") + "\n",
		"cgroup.controllers": controllers + "\n",
	}
	if !root {
		files["cgroup.type"] = "domain\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			f.t.Fatal(err)
		}
	}
}

// place runs PlaceV2 for process 42 in cgroup own, the mount showing mountRoot.
func (f *fakeCgroupfs) place(own, mountRoot string, opts PlaceOptions) (Placement, error) {
	mountinfo := "22 1 0:21 / /sys rw - sysfs sysfs rw\n" +
		"30 22 0:26 " + mountRoot + " " + f.mount + " rw,nosuid - cgroup2 cgroup2 rw\n"
	return PlaceV2(f.mount, []byte("0::"+own+"\n"), []byte(mountinfo), 42, opts)
}

const all = "cpuset cpu io memory pids"

func TestPlaceV2(t *testing.T) {
	type want struct {
		base, own string
		move      []int
		root, ns  bool
	}
	for _, c := range []struct {
		name      string
		layout    func(f *fakeCgroupfs)
		own       string
		mountRoot string
		want      want
	}{{
		name:   "the host's root: groups at the root, nothing moves",
		layout: func(f *fakeCgroupfs) { f.group("/", true, all, "1", "42") },
		own:    "/",
		want:   want{base: "/", own: "/", root: true},
	}, {
		name: "a delegated cgroup of its own: sandboxd moves itself into the leaf",
		layout: func(f *fakeCgroupfs) {
			f.group("/", true, all, "1")
			f.group("/system.slice/judge.service", false, "memory pids", "42")
		},
		own:  "/system.slice/judge.service",
		want: want{base: "/system.slice/judge.service", own: "/system.slice/judge.service", move: []int{42}},
	}, {
		name: "started in a leaf: groups beside it, nothing moves",
		layout: func(f *fakeCgroupfs) {
			f.group("/", true, all, "1")
			f.group("/system.slice/judge.service", false, "memory pids")
			f.group("/system.slice/judge.service/leaf", false, "", "7", "42")
		},
		own:  "/system.slice/judge.service/leaf",
		want: want{base: "/system.slice/judge.service", own: "/system.slice/judge.service/leaf"},
	}, {
		name: "the leaf of the host's root: groups at the root",
		layout: func(f *fakeCgroupfs) {
			f.group("/", true, all, "1")
			f.group("/leaf", false, "", "42")
		},
		own:  "/leaf",
		want: want{base: "/", own: "/leaf", root: true},
	}, {
		name: "a container's root holding processes: they and sandboxd move into the leaf",
		layout: func(f *fakeCgroupfs) {
			f.group("/", false, "memory pids", "1", "9", "42")
		},
		own:  "/",
		want: want{base: "/", own: "/", move: []int{1, 9, 42}, ns: true},
	}, {
		name: "a container's leaf, after an earlier sandboxd moved the judge",
		layout: func(f *fakeCgroupfs) {
			f.group("/", false, "memory pids")
			f.group("/leaf", false, "", "1", "9", "42")
		},
		own:  "/leaf",
		want: want{base: "/", own: "/leaf"},
	}, {
		name: "a mount that shows a subtree: paths relative to it",
		layout: func(f *fakeCgroupfs) {
			f.group("/", false, "memory pids")
			f.group("/judge", false, "memory pids", "42")
		},
		own:       "/kubepods/pod1/judge",
		mountRoot: "/kubepods/pod1",
		want:      want{base: "/judge", own: "/judge", move: []int{42}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeCgroupfs(t)
			c.layout(f)
			mountRoot := c.mountRoot
			if mountRoot == "" {
				mountRoot = "/"
			}
			p, err := f.place(c.own, mountRoot, PlaceOptions{})
			if err != nil {
				t.Fatal(err)
			}
			got := want{base: p.Base, own: p.Own, move: p.Move, root: p.Root, ns: p.NamespaceRoot}
			w := c.want
			w.base, w.own = filepath.Join(f.mount, w.base), filepath.Join(f.mount, w.own)
			if got.base != w.base || got.own != w.own || !slices.Equal(got.move, w.move) || got.root != w.root || got.ns != w.ns {
				t.Errorf("placement %+v, want %+v", got, w)
			}
			if p.Leaf() != filepath.Join(w.base, LeafName) {
				t.Errorf("leaf %s", p.Leaf())
			}
		})
	}
}

// Where sandboxd cannot place its groups, the error says which processes
// or controllers are in the way, where, and what to do.
func TestPlaceV2Refusals(t *testing.T) {
	for _, c := range []struct {
		name   string
		layout func(f *fakeCgroupfs)
		own    string
		opts   PlaceOptions
		says   []string
	}{{
		name: "the judge shares sandboxd's cgroup",
		layout: func(f *fakeCgroupfs) {
			f.group("/", true, all, "1")
			f.group("/system.slice/judge.service", false, "memory pids", "7", "42")
		},
		own:  "/system.slice/judge.service",
		says: []string{"/system.slice/judge.service holds other processes (pids 7)", "/system.slice/judge.service/leaf", "DelegateSubgroup=leaf"},
	}, {
		name: "a container's root with its processes to be kept",
		layout: func(f *fakeCgroupfs) {
			f.group("/", false, "memory pids", "1", "42")
		},
		own:  "/",
		opts: PlaceOptions{KeepOthers: true},
		says: []string{"container's root cgroup", "(pids 1)", "--no-move-processes", "mkdir " + "MOUNT/leaf", "cgroup.procs"},
	}, {
		name: "processes of another PID namespace",
		layout: func(f *fakeCgroupfs) {
			f.group("/", false, "memory pids", "0", "1", "42")
		},
		own:  "/",
		says: []string{"another PID namespace"},
	}, {
		name: "controllers not delegated",
		layout: func(f *fakeCgroupfs) {
			f.group("/", true, all, "1")
			f.group("/system.slice/judge.service", false, "cpu io", "42")
		},
		own:  "/system.slice/judge.service",
		says: []string{"controllers memory pids are not delegated to MOUNT/system.slice/judge.service", `"cpu io"`, "MOUNT/system.slice/cgroup.subtree_control", "Delegate=yes"},
	}, {
		name: "controllers not delegated to a container",
		layout: func(f *fakeCgroupfs) {
			f.group("/", false, "cpu pids", "1", "42")
		},
		own:  "/",
		says: []string{"controllers memory are not delegated to MOUNT ", "container's cgroup on the host"},
	}, {
		name: "the leaf's parent holds processes",
		layout: func(f *fakeCgroupfs) {
			f.group("/", true, all, "1")
			f.group("/judge", false, "memory pids", "3")
			f.group("/judge/leaf", false, "", "42")
		},
		own:  "/judge/leaf",
		says: []string{"parent holds processes (pids 3)"},
	}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeCgroupfs(t)
			c.layout(f)
			_, err := f.place(c.own, "/", c.opts)
			if err == nil {
				t.Fatal("placed, want a refusal")
			}
			for _, s := range c.says {
				if s = strings.ReplaceAll(s, "MOUNT", f.mount); !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

func TestPlaceV2ReadsWhereSandboxdStands(t *testing.T) {
	f := newFakeCgroupfs(t)
	f.group("/", false, "memory pids", "42")
	if _, err := f.place("/../outside", "/", PlaceOptions{}); err == nil || !strings.Contains(err.Error(), "outside its cgroup namespace") {
		t.Errorf("a cgroup outside the namespace: %v", err)
	}
	if _, err := f.place("/elsewhere/judge", "/kubepods/pod1", PlaceOptions{}); err == nil || !strings.Contains(err.Error(), "not under the cgroup2 mount") {
		t.Errorf("a cgroup outside the mount: %v", err)
	}
	if _, err := PlaceV2(f.mount, []byte("0::/\n"), []byte("22 1 0:21 / /sys rw - sysfs sysfs rw\n"), 42, PlaceOptions{}); err == nil || !strings.Contains(err.Error(), "no cgroup2 mount") {
		t.Errorf("no cgroup2 mount: %v", err)
	}
	if _, err := PlaceV2(f.mount, []byte("1:name=systemd:/\n"), nil, 42, PlaceOptions{}); err == nil || !strings.Contains(err.Error(), "no cgroup v2 line") {
		t.Errorf("no v2 line: %v", err)
	}
}
