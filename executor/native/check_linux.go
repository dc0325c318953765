package native

import (
	"fmt"
	"os"
	"strings"

	"sandboxd/cgroup"
	"sandboxd/executor"
)

// Check reports what the host offers the native executor, and runs a
// program in a real box to prove it, configured as cfg (its state dir a
// scratch one).
func Check(cfg Config) []executor.Finding {
	var out []executor.Finding
	out = append(out, executor.CheckRoot())

	v2, controllers, err := cgroup.Detect()
	version := "v1"
	if v2 {
		version = "v2"
	}
	detail := fmt.Sprintf("%s, controllers: %s", version, strings.Join(controllers, " "))
	if v2 {
		// Where this sandboxd would make its groups, or what keeps it from it.
		var p cgroup.Placement
		if p, err = cgroup.PlaceV2Here(cfg.Cgroup); err == nil {
			detail = p.Describe(os.Getpid())
		}
	}
	if err != nil {
		detail += ": " + err.Error()
	}
	out = append(out, executor.Required("cgroups", err == nil, detail))

	var missing []string
	for _, ns := range []string{"pid", "mnt", "net", "ipc", "uts"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			missing = append(missing, ns)
		}
	}
	nsDetail := "pid mnt net ipc uts"
	if len(missing) > 0 {
		nsDetail += "; missing: " + strings.Join(missing, " ")
	}
	out = append(out, executor.Required("namespaces", len(missing) == 0, nsDetail))

	if cpus := cfg.Cgroup.CPUs; len(cpus) > 0 {
		where, pinErr := cgroup.CheckPinning(cfg.Cgroup)
		detail := fmt.Sprintf("runs pinned to %s, one run a CPU: %s", cgroup.FormatCPUList(cpus), where)
		if pinErr != nil {
			detail, err = pinErr.Error(), pinErr
		}
		out = append(out, executor.Required("cpus", pinErr == nil, detail))
	}

	if out[0].OK && err == nil {
		out = append(out, executor.CheckBox(func() (executor.Executor, error) { return New(cfg) }))
	}
	return out
}
