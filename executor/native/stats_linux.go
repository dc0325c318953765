package native

import (
	"sandboxd/executor"
	"sandboxd/spec"
)

// Stats tells how many boxes are open and where the instance's cgroups are.
func (n *Executor) Stats() executor.Stats {
	mode := "v1"
	if n.cgroups.V2 {
		mode = "v2"
	}
	return executor.Stats{Backend: "native", BoxesOpen: n.boxes.Len(), Cgroup: spec.CgroupInfo{Mode: mode, Groups: n.cgroups.Groups()}}
}
