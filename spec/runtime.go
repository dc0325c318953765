package spec

import (
	"math"
	"strings"
)

// InstallRequest is the `install_package` command: the fields and units of
// the seed (seconds; memory and max_file_size in kilobytes), plus Replace.
type InstallRequest struct {
	Name     string `json:"name"`
	NixShell string `json:"nix_shell"`
	// Replace lets an install take the place of a runtime of the same name.
	Replace bool `json:"replace"`

	WallTime             *float64 `json:"wall_time"`
	CPUTime              *float64 `json:"cpu_time"`
	ExtraTime            *float64 `json:"extra_time"`
	Memory               *int64   `json:"memory"`
	MaxOpenFiles         *int64   `json:"max_open_files"`
	MaxFileSize          *int64   `json:"max_file_size"`
	MaxNumberOfProcesses *int64   `json:"max_number_of_processes"`
}

// ValidRuntimeName reports whether name may name a runtime: a name usable
// as a file name (GC roots are kept per name). A loop, not a regular
// expression: compiling one with {0,99} took a millisecond at every start
// of sandboxd and of each box's init (the same binary).
func ValidRuntimeName(name string) error {
	ok := len(name) >= 1 && len(name) <= 100 && name[0] != '.'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._+-", c) >= 0
	}
	if !ok {
		return Errorf(CodeInvalidArgument, "runtime name %s: use 1 to 100 letters, digits and . _ + - (not starting with .)", Quote(name))
	}
	return nil
}

// Validate checks an install request. wall_time, cpu_time, memory and
// max_number_of_processes are required: an install that could wait or grow
// without bound is never what a judge means. extra_time, max_open_files and
// max_file_size may be left out (0 s; the box's defaults).
func (r *InstallRequest) Validate() error {
	if err := ValidRuntimeName(r.Name); err != nil {
		return err
	}
	if strings.TrimSpace(r.NixShell) == "" || strings.IndexByte(r.NixShell, 0) >= 0 {
		return Errorf(CodeInvalidArgument, "nix_shell must be the non-empty text of a shell.nix")
	}
	for _, t := range []struct {
		name     string
		value    *float64
		required bool
	}{{"wall_time", r.WallTime, true}, {"cpu_time", r.CPUTime, true}, {"extra_time", r.ExtraTime, false}} {
		if t.value == nil {
			if t.required {
				return Errorf(CodeMissingLimit, "%s is required", t.name)
			}
			continue
		}
		v := *t.value
		if math.IsNaN(v) || v < 0 || v > MaxTimeLimit || (v == 0 && t.required) {
			return Errorf(CodeInvalidArgument, "%s must be a positive number of seconds up to %g", t.name, MaxTimeLimit)
		}
	}
	for _, n := range []struct {
		name     string
		value    *int64
		required bool
	}{{"memory", r.Memory, true}, {"max_number_of_processes", r.MaxNumberOfProcesses, true}, {"max_open_files", r.MaxOpenFiles, false}, {"max_file_size", r.MaxFileSize, false}} {
		if n.value == nil {
			if n.required {
				return Errorf(CodeMissingLimit, "%s is required", n.name)
			}
			continue
		}
		if *n.value <= 0 || *n.value > math.MaxInt32 {
			return Errorf(CodeInvalidArgument, "%s must be a positive integer", n.name)
		}
	}
	return nil
}

// Exit statuses of an install, as isolate's meta file spells them.
const (
	StatusRuntimeError = "RE" // exited with a non-zero code
	StatusSignaled     = "SG" // killed by a signal (also by the kernel for memory)
	StatusTimeout      = "TO" // over wall_time or cpu_time
)

// InstallResult is the reply to `install_package`, the seed's fields: every
// one is present, null when it does not apply.
type InstallResult struct {
	Memory      *int64   `json:"memory"` // kilobytes
	ExitCode    *int     `json:"exit_code"`
	ExitSignal  *int     `json:"exit_signal"`
	ExitMessage *string  `json:"exit_message"`
	ExitStatus  *string  `json:"exit_status"`
	Stdout      string   `json:"stdout"`
	Stderr      string   `json:"stderr"`
	CPUTime     *float64 `json:"cpu_time"`
	WallTime    *float64 `json:"wall_time"`
}

// RuntimeInfo is one entry of `list_runtimes`.
type RuntimeInfo struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"` // RFC 3339, UTC
}
