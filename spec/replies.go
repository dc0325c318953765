package spec

// The replies of the protocol's commands, one Go type per reply in
// PROTOCOL.md: run's is RunResult, install_package's InstallResult.

// Done is the reply of close_box, reset_box, remove_file and remove_runtime: {}.
type Done struct{}

// OpenBoxReply is open_box's reply.
type OpenBoxReply struct {
	Box int `json:"box"`
}

// BoxPathReply is box_path's reply: where the box's /space is on the host.
type BoxPathReply struct {
	Path string `json:"path"`
}

// WriteFileReply is write_file's reply: the bytes written.
type WriteFileReply struct {
	Size int64 `json:"size"`
}

// ReadFileReply is read_file's reply.
type ReadFileReply struct {
	Content   string `json:"content"`
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated"`
}

// ListFilesReply is list_files' reply.
type ListFilesReply struct {
	Entries []FileEntry `json:"entries"`
}

// FileEntry is one file of a list_files reply. A name that is not UTF-8 is
// shown with U+FFFD in Name and exactly in NameBase64, which the file
// commands take back as path_base64.
type FileEntry struct {
	Name       string `json:"name"`
	NameBase64 string `json:"name_base64,omitempty"`
	Type       string `json:"type"` // "file", "dir", "symlink" or "other"
	Size       int64  `json:"size"`
	Mode       uint32 `json:"mode"` // permission bits
}

// VersionReply is version's reply.
type VersionReply struct {
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
}

// ListRuntimesReply is list_runtimes' reply.
type ListRuntimesReply struct {
	Runtimes []RuntimeInfo `json:"runtimes"`
}

// StatsReply is stats' reply: what a worker exports as metrics. Times are
// seconds; the counts of runs are since sandboxd began serving.
type StatsReply struct {
	Uptime   float64 `json:"uptime"`
	Executor string  `json:"executor"`
	// BoxesOpen counts the boxes open, box 0 and installs' boxes included.
	BoxesOpen int `json:"boxes_open"`
	// RunsRunning and RunsQueued count run and run_group requests: those
	// that hold a --parallel slot, and those that wait for their box's turn
	// or for a slot. Parallel is the number of slots.
	RunsRunning int `json:"runs_running"`
	RunsQueued  int `json:"runs_queued"`
	Parallel    int `json:"parallel"`
	// Runs counts the results of runs by verdict, each program of a
	// run_group one; every verdict is there, 0 until one is seen.
	Runs map[string]uint64 `json:"runs"`
	// RunErrors counts run and run_group requests answered with an error,
	// by code; a code is there once seen.
	RunErrors map[Code]uint64 `json:"run_errors"`
	Cgroup    CgroupInfo      `json:"cgroup"`
	// CPUs are the CPUs runs are pinned to; nil without --cpus.
	CPUs *CPUStats `json:"cpus,omitempty"`
}

// CPUStats tells of the CPUs of --cpus.
type CPUStats struct {
	List  string `json:"list"`   // as a CPU list: "2-7"
	InUse int    `json:"in_use"` // held by runs now, one per program of a run_group
}

// CgroupInfo tells which cgroups hold the instance's runs.
type CgroupInfo struct {
	// Mode is "v1" or "v2", or "none" when the backend uses no cgroup of
	// the host (isolate 2.x on a cgroup v1 host, say).
	Mode string `json:"mode"`
	// Groups are the host directories of the instance's own groups, one
	// per hierarchy on v1; empty when they are not sandboxd's (isolate's).
	Groups []string `json:"groups"`
}
