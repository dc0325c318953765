package executor

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"sandboxd/cgroup"
	"sandboxd/spec"
)

// Finding is one line of `sandboxd check`.
type Finding struct {
	Name   string
	OK     bool
	Detail string
	// Required findings decide whether sandboxd can work on this host.
	Required bool
}

// CheckHost reports what the host offers the native executor, and runs a
// program in a real box to prove it, configured as cfg (its state dir a
// scratch one).
func CheckHost(cfg NativeConfig) []Finding {
	var out []Finding
	root := os.Geteuid() == 0
	out = append(out, Finding{"root", root, fmt.Sprintf("euid %d", os.Geteuid()), true})

	v2, controllers, err := cgroup.Detect()
	version := "v1"
	if v2 {
		version = "v2"
	}
	detail := fmt.Sprintf("%s, controllers: %s", version, strings.Join(controllers, " "))
	if err != nil {
		detail += ": " + err.Error()
	}
	out = append(out, Finding{"cgroups", err == nil, detail, true})

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
	out = append(out, Finding{"namespaces", len(missing) == 0, nsDetail, true})

	if root && err == nil {
		out = append(out, checkBox(cfg))
	}
	return out
}

func checkBox(cfg NativeConfig) Finding {
	start := time.Now()
	n, err := NewNative(cfg)
	if err != nil {
		return Finding{"box", false, err.Error(), true}
	}
	defer n.Close()
	opened := time.Since(start)
	cpu, procs := 1.0, int64(1)
	req := &spec.RunRequest{Argv: []string{"/bin/true"}, Limits: spec.Limits{CPUTime: &cpu, Processes: &procs}}
	start = time.Now()
	res, err := n.Run(context.Background(), DefaultBox, req)
	if err != nil {
		return Finding{"box", false, "run /bin/true: " + err.Error(), true}
	}
	if res.Verdict != spec.VerdictOK {
		return Finding{"box", false, "run /bin/true: verdict " + res.Verdict, true}
	}
	return Finding{"box", true, fmt.Sprintf("opened in %v, ran /bin/true in %v", opened.Round(time.Microsecond), time.Since(start).Round(time.Microsecond)), true}
}
