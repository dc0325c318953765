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
