package executor

import (
	"context"
	"fmt"
	"os"
	"time"

	"sandboxd/spec"
)

// Finding is one line of `sandboxd check`.
type Finding struct {
	Name   string
	OK     bool
	Detail string
	// Required findings decide whether sandboxd can work on this host.
	Required bool
	// Warn findings tell what makes timing less fair (see CheckTiming).
	Warn bool
}

// Required is a finding that decides whether sandboxd can work on this host.
func Required(name string, ok bool, detail string) Finding {
	return Finding{Name: name, OK: ok, Detail: detail, Required: true}
}

// CheckRoot tells whether sandboxd runs as root, which every backend needs.
func CheckRoot() Finding {
	return Required("root", os.Geteuid() == 0, fmt.Sprintf("euid %d", os.Geteuid()))
}

// CheckBox proves a backend on this host: it opens an executor with open,
// runs /bin/true in its box 0, and tells how long each took.
func CheckBox(open func() (Executor, error)) Finding {
	start := time.Now()
	e, err := open()
	if err != nil {
		return Required("box", false, err.Error())
	}
	defer e.Close()
	opened := time.Since(start)
	req := &spec.RunRequest{Argv: []string{"/bin/true"}, Limits: spec.Limits{CPUTime: new(1.0), Processes: new(int64(1))}}
	start = time.Now()
	res, err := Run(context.Background(), e, DefaultBox, req, Runtime{})
	if err != nil {
		return Required("box", false, "run /bin/true: "+err.Error())
	}
	if res.Verdict != spec.VerdictOK {
		return Required("box", false, "run /bin/true: verdict "+res.Verdict)
	}
	return Required("box", true, fmt.Sprintf("opened in %v, ran /bin/true in %v", opened.Round(time.Microsecond), time.Since(start).Round(time.Microsecond)))
}
