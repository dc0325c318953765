package spec

import (
	"path"
	"strings"
)

// BoxOptions are the arguments of `open_box`. Zero values take the defaults.
type BoxOptions struct {
	// QuotaSpace bounds the bytes of /space (and, separately, of /tmp).
	QuotaSpace int64 `json:"quota_space"`
	// QuotaInodes bounds the number of files of /space (and of /tmp).
	QuotaInodes int64 `json:"quota_inodes"`
	// Dirs replaces the host directories shown read-only in the box.
	Dirs []string `json:"dirs"`
	// Network is the box's network: "" (none: its loopback is down) or
	// NetworkLoopback. Never the host's.
	Network string `json:"network"`
}

// NetworkLoopback brings up the loopback interface of the box's own
// network namespace: programs reach 127.0.0.1 and ::1, nothing else.
const NetworkLoopback = "loopback"

// Default box options.
const (
	DefaultQuotaSpace  = 512 << 20
	DefaultQuotaInodes = 16384
)

// DefaultDirs are the host directories a box shows read-only.
var DefaultDirs = []string{"/usr", "/bin", "/lib", "/lib64"}

// WithDefaults fills unset options with the defaults; dirs are the
// directories shown when the options name none.
func (o BoxOptions) WithDefaults(dirs []string) BoxOptions {
	if o.QuotaSpace == 0 {
		o.QuotaSpace = DefaultQuotaSpace
	}
	if o.QuotaInodes == 0 {
		o.QuotaInodes = DefaultQuotaInodes
	}
	if o.Dirs == nil {
		o.Dirs = dirs
	}
	return o
}

// Validate checks box options that a judge sent.
func (o BoxOptions) Validate() error {
	if o.QuotaSpace < 0 || o.QuotaInodes < 0 {
		return Errorf(CodeInvalidArgument, "quota_space and quota_inodes must be positive")
	}
	if o.Network != "" && o.Network != NetworkLoopback {
		return Errorf(CodeInvalidArgument, "network: %s is not %q (absent: no network)", Quote(o.Network), NetworkLoopback)
	}
	for _, d := range o.Dirs {
		if len(d) == 0 || d[0] != '/' || path.Clean(d) != d {
			return Errorf(CodeInvalidArgument, "dirs: %s is not a clean absolute path", Quote(d))
		}
		if len(d) > MaxPath {
			return Errorf(CodeInvalidArgument, "dirs: a path of %d bytes is longer than %d", len(d), MaxPath)
		}
		for _, own := range boxOwnDirs {
			if d == own || strings.HasPrefix(d, own+"/") {
				return Errorf(CodeInvalidArgument, "dirs: %s is the box's own (%s)", Quote(d), own)
			}
		}
	}
	return nil
}

// boxOwnDirs are the box's own directories, which dirs may not show.
var boxOwnDirs = []string{"/", SpaceDir, "/tmp", "/dev", "/proc", "/nix"}

// BoxInfo tells where a box's files live on the host, whom they belong to
// and how much they may take.
type BoxInfo struct {
	SpaceDir   string // host path of the box's /space
	UID, GID   int    // owner of files in the box
	QuotaSpace int64  // bytes /space may hold, and the largest file a run may write
}
