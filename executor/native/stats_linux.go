package native

import (
	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Stats tells how many boxes are open, where the instance's cgroups are and,
// with --cpus, how many CPUs runs hold.
func (n *Executor) Stats() executor.Stats {
	mode := "v1"
	if n.cgroups.V2 {
		mode = "v2"
	}
	st := executor.Stats{Backend: "native", BoxesOpen: n.boxes.Len(), Cgroup: spec.CgroupInfo{Mode: mode, Groups: n.cgroups.Groups()}}
	if n.cpus != nil {
		st.CPUs = &spec.CPUStats{List: cgroup.FormatCPUList(n.cfg.Cgroup.CPUs), InUse: n.cpus.InUse()}
	}
	return st
}
