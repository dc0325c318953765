package native

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"sandboxd/cgroup"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Check reports what the host offers the native executor, and runs a
// program in a real box to prove it, configured as cfg (its state dir a
// scratch one).
func Check(cfg Config) []executor.Finding {
	var out []executor.Finding
	root := os.Geteuid() == 0
	out = append(out, required("root", root, fmt.Sprintf("euid %d", os.Geteuid())))

	v2, controllers, err := cgroup.Detect()
	version := "v1"
	if v2 {
		version = "v2"
	}
	detail := fmt.Sprintf("%s, controllers: %s", version, strings.Join(controllers, " "))
	if err != nil {
		detail += ": " + err.Error()
	}
	out = append(out, required("cgroups", err == nil, detail))

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
	out = append(out, required("namespaces", len(missing) == 0, nsDetail))

	if root && err == nil {
		out = append(out, checkBox(cfg))
	}
	return out
}

func checkBox(cfg Config) executor.Finding {
	start := time.Now()
	n, err := New(cfg)
	if err != nil {
		return required("box", false, err.Error())
	}
	defer n.Close()
	opened := time.Since(start)
	cpu, procs := 1.0, int64(1)
	req := &spec.RunRequest{Argv: []string{"/bin/true"}, Limits: spec.Limits{CPUTime: &cpu, Processes: &procs}}
	start = time.Now()
	res, err := executor.Run(context.Background(), n, executor.DefaultBox, req, executor.Runtime{})
	if err != nil {
		return required("box", false, "run /bin/true: "+err.Error())
	}
	if res.Verdict != spec.VerdictOK {
		return required("box", false, "run /bin/true: verdict "+res.Verdict)
	}
	return required("box", true, fmt.Sprintf("opened in %v, ran /bin/true in %v", opened.Round(time.Microsecond), time.Since(start).Round(time.Microsecond)))
}

// required is a finding that decides whether sandboxd can work on this host.
func required(name string, ok bool, detail string) executor.Finding {
	return executor.Finding{Name: name, OK: ok, Detail: detail, Required: true}
}
