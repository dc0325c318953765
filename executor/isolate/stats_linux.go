package isolate

import (
	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Stats tells how many boxes are open and which cgroups isolate uses: its
// own groups, under its configuration's cg_root, which sandboxd does not name.
func (x *Executor) Stats() executor.Stats {
	info := spec.CgroupInfo{Mode: "none", Groups: []string{}}
	if x.cg {
		info.Mode = "v1"
		if v2, _, _ := cgroup.Detect(); v2 {
			info.Mode = "v2"
		}
	}
	return executor.Stats{Backend: "isolate", BoxesOpen: x.boxes.Len(), Cgroup: info}
}
