package protocol

import (
	"context"
	"encoding/base64"
	"os"
	"unicode/utf8"

	"sandboxd/boxfs"
	"sandboxd/executor"
	"sandboxd/spec"
)

// Runtimes gives runs what an installed runtime adds to them, and installs,
// lists and removes runtimes.
type Runtimes interface {
	// Runtime returns what a run with the runtime called name gets (its
	// environment, the host views it needs), or an error with code
	// no_such_runtime.
	Runtime(name string) (executor.Runtime, error)
	// Install installs a validated request in a box of its own. A failed
	// install is a result (with its status), not an error.
	Install(ctx context.Context, req *spec.InstallRequest) (*spec.InstallResult, error)
	List(ctx context.Context) ([]spec.RuntimeInfo, error)
	// Remove drops a runtime, or returns an error with code no_such_runtime.
	Remove(ctx context.Context, name string) error
}

// command is one protocol command. perBox commands are ordered per box.
type command struct {
	name   string
	perBox bool
	// takesSlot: the command runs a program in its box. It holds a
	// --parallel slot while it runs, and close_box and reset_box of its box
	// end it. Every other command starts at once. (install_package runs in
	// a box of its own, bounded by --max-installs.)
	takesSlot bool
	// endsRuns, when set, tells the error with which a request of the
	// command ends the runs of its box sent before it; nil when the
	// request is refused, which then ends nothing.
	endsRuns func(line []byte) error
	handle   func(ctx context.Context, s *Server, line []byte) (any, error)
}

var commands map[string]*command

func init() {
	defer func() {
		for name, c := range commands {
			c.name = name
		}
	}()
	commands = map[string]*command{
		"run":         {perBox: true, takesSlot: true, handle: handleRun},
		"open_box":    {perBox: false, handle: handleOpenBox},
		"close_box":   {perBox: true, endsRuns: closeEndsRuns, handle: handleCloseBox},
		"reset_box":   {perBox: true, endsRuns: resetEndsRuns, handle: handleResetBox},
		"box_path":    {perBox: true, handle: handleBoxPath},
		"write_file":  {perBox: true, handle: handleWriteFile},
		"read_file":   {perBox: true, handle: handleReadFile},
		"list_files":  {perBox: true, handle: handleListFiles},
		"remove_file": {perBox: true, handle: handleRemoveFile},
		"version":     {perBox: false, handle: handleVersion},

		"install_package": {handle: handleInstallPackage},
		"list_runtimes":   {handle: handleListRuntimes},
		"remove_runtime":  {handle: handleRemoveRuntime},
	}
}

// boxArg is the optional box field of box commands; the default is box 0.
type boxArg struct {
	Box int `json:"box"`
}

type empty struct{}

func handleRun(ctx context.Context, s *Server, line []byte) (any, error) {
	var args struct {
		envelope
		boxArg
		spec.RunRequest
	}
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	req := &args.RunRequest
	if err := req.Validate(); err != nil {
		return nil, err
	}
	var rt executor.Runtime
	if req.Runtime != "" {
		rts, err := s.runtimes()
		if err != nil {
			return nil, err
		}
		if rt, err = rts.Runtime(req.Runtime); err != nil {
			return nil, err
		}
	}
	return executor.Run(ctx, s.Exec, args.Box, req, rt)
}

func handleOpenBox(_ context.Context, s *Server, line []byte) (any, error) {
	var args struct {
		envelope
		spec.BoxOptions
	}
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	if err := args.BoxOptions.Validate(); err != nil {
		return nil, err
	}
	id, err := s.Exec.OpenBox(args.BoxOptions)
	if err != nil {
		return nil, err
	}
	return struct {
		Box int `json:"box"`
	}{id}, nil
}

// closeBoxArgs decodes a close_box request and returns the box to close.
func closeBoxArgs(line []byte) (int, error) {
	var args struct {
		envelope
		Box *int `json:"box"`
	}
	if err := decodeArgs(line, &args); err != nil {
		return 0, err
	}
	if args.Box == nil {
		return 0, spec.Errorf(spec.CodeInvalidArgument, "close_box needs the box to close")
	}
	return *args.Box, nil
}

func closeEndsRuns(line []byte) error {
	box, err := closeBoxArgs(line)
	if err != nil || box == executor.DefaultBox {
		return nil // refused: box 0 cannot be closed
	}
	return spec.Errorf(spec.CodeBoxClosed, "the run was ended by close_box of box %d", box)
}

func handleCloseBox(_ context.Context, s *Server, line []byte) (any, error) {
	box, err := closeBoxArgs(line)
	if err != nil {
		return nil, err
	}
	return empty{}, s.Exec.CloseBox(box)
}

func resetBoxArgs(line []byte) (int, error) {
	var args struct {
		envelope
		boxArg
	}
	err := decodeArgs(line, &args)
	return args.Box, err
}

func resetEndsRuns(line []byte) error {
	box, err := resetBoxArgs(line)
	if err != nil {
		return nil
	}
	return spec.Errorf(spec.CodeBoxReset, "the run was ended by reset_box of box %d", box)
}

func handleResetBox(_ context.Context, s *Server, line []byte) (any, error) {
	box, err := resetBoxArgs(line)
	if err != nil {
		return nil, err
	}
	return empty{}, s.Exec.ResetBox(box)
}

func handleBoxPath(_ context.Context, s *Server, line []byte) (any, error) {
	var args struct {
		envelope
		boxArg
	}
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	info, err := s.Exec.Box(args.Box)
	if err != nil {
		return nil, err
	}
	return struct {
		Path string `json:"path"`
	}{info.SpaceDir}, nil
}

// fileArgs are the fields every file command has: the box, and the path as
// text or, for a name that is not UTF-8, as base64 of its bytes.
type fileArgs struct {
	envelope
	boxArg
	Path       string  `json:"path"`
	PathBase64 *string `json:"path_base64"`
}

// space decodes a file command, finds its box and tells the path it names.
func space(s *Server, line []byte, args interface{ file() *fileArgs }) (boxfs.Space, string, error) {
	if err := decodeArgs(line, args); err != nil {
		return boxfs.Space{}, "", err
	}
	a := args.file()
	p := a.Path
	if a.PathBase64 != nil {
		if a.Path != "" {
			return boxfs.Space{}, "", spec.Errorf(spec.CodeInvalidArgument, "give path or path_base64, not both")
		}
		b, err := base64.StdEncoding.DecodeString(*a.PathBase64)
		if err != nil {
			return boxfs.Space{}, "", spec.Errorf(spec.CodeInvalidArgument, "path_base64: %v", err)
		}
		p = string(b)
	}
	info, err := s.Exec.Box(a.Box)
	return boxfs.Space{BoxInfo: info}, p, err
}

func (a *fileArgs) file() *fileArgs { return a }

type writeFileArgs struct {
	fileArgs
	Content       *string `json:"content"`
	ContentBase64 *string `json:"content_base64"`
	Mode          *uint32 `json:"mode"`
}

func handleWriteFile(_ context.Context, s *Server, line []byte) (any, error) {
	var args writeFileArgs
	sp, path, err := space(s, line, &args)
	if err != nil {
		return nil, err
	}
	var data []byte
	switch {
	case args.Content != nil && args.ContentBase64 != nil:
		return nil, spec.Errorf(spec.CodeInvalidArgument, "give content or content_base64, not both")
	case args.Content != nil:
		data = []byte(*args.Content)
	case args.ContentBase64 != nil:
		if data, err = base64.StdEncoding.DecodeString(*args.ContentBase64); err != nil {
			return nil, spec.Errorf(spec.CodeInvalidArgument, "content_base64: %v", err)
		}
	}
	mode := os.FileMode(0o644)
	if args.Mode != nil {
		if *args.Mode > 0o777 {
			return nil, spec.Errorf(spec.CodeInvalidArgument, "mode must be permission bits, 0 to 0777 (511)")
		}
		mode = os.FileMode(*args.Mode)
	}
	n, err := sp.WriteFile(path, data, mode)
	if err != nil {
		return nil, err
	}
	return struct {
		Size int64 `json:"size"`
	}{n}, nil
}

// Read sizes: the default, and the most one reply carries (larger files go
// through box_path).
const (
	defaultReadBytes = 1 << 20
	maxReadBytes     = 8 << 20
)

type readFileArgs struct {
	fileArgs
	Offset   int64  `json:"offset"`
	MaxBytes *int64 `json:"max_bytes"`
	Encoding string `json:"encoding"`
}

func handleReadFile(_ context.Context, s *Server, line []byte) (any, error) {
	var args readFileArgs
	sp, path, err := space(s, line, &args)
	if err != nil {
		return nil, err
	}
	max := int64(defaultReadBytes)
	if args.MaxBytes != nil {
		max = *args.MaxBytes
	}
	if max < 0 || max > maxReadBytes || args.Offset < 0 {
		return nil, spec.Errorf(spec.CodeInvalidArgument, "max_bytes must be 0 to %d and offset at least 0", maxReadBytes)
	}
	if args.Encoding != "" && args.Encoding != "utf8" && args.Encoding != "base64" {
		return nil, spec.Errorf(spec.CodeInvalidArgument, "encoding must be \"utf8\" or \"base64\"")
	}
	data, size, truncated, err := sp.ReadFile(path, args.Offset, max)
	if err != nil {
		return nil, err
	}
	content := string(data)
	if args.Encoding == "base64" {
		content = base64.StdEncoding.EncodeToString(data)
	} else if !utf8.Valid(data) {
		return nil, spec.Errorf(spec.CodeInvalidArgument, "%s is not valid UTF-8 text: read it with \"encoding\": \"base64\"", spec.Quote(path))
	}
	return struct {
		Content   string `json:"content"`
		Size      int64  `json:"size"`
		Truncated bool   `json:"truncated"`
	}{content, size, truncated}, nil
}

func handleListFiles(_ context.Context, s *Server, line []byte) (any, error) {
	var args fileArgs
	sp, path, err := space(s, line, &args)
	if err != nil {
		return nil, err
	}
	entries, err := sp.ListFiles(path)
	if err != nil {
		return nil, err
	}
	return struct {
		Entries []boxfs.Entry `json:"entries"`
	}{entries}, nil
}

func handleRemoveFile(_ context.Context, s *Server, line []byte) (any, error) {
	var args fileArgs
	sp, path, err := space(s, line, &args)
	if err != nil {
		return nil, err
	}
	return empty{}, sp.RemoveFile(path)
}

func handleVersion(_ context.Context, s *Server, line []byte) (any, error) {
	var args struct{ envelope }
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	return struct {
		Version  string `json:"version"`
		Protocol int    `json:"protocol"`
	}{s.Version, 1}, nil
}

func (s *Server) runtimes() (Runtimes, error) {
	if s.Runtimes == nil {
		return nil, spec.Errorf(spec.CodeNoSuchRuntime, "this sandboxd keeps no runtimes")
	}
	return s.Runtimes, nil
}

func handleInstallPackage(ctx context.Context, s *Server, line []byte) (any, error) {
	var args struct {
		envelope
		spec.InstallRequest
	}
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	if err := args.InstallRequest.Validate(); err != nil {
		return nil, err
	}
	rts, err := s.runtimes()
	if err != nil {
		return nil, err
	}
	return rts.Install(ctx, &args.InstallRequest)
}

func handleListRuntimes(ctx context.Context, s *Server, line []byte) (any, error) {
	var args struct{ envelope }
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	rts, err := s.runtimes()
	if err != nil {
		return nil, err
	}
	list, err := rts.List(ctx)
	if err != nil {
		return nil, err
	}
	return struct {
		Runtimes []spec.RuntimeInfo `json:"runtimes"`
	}{list}, nil
}

func handleRemoveRuntime(ctx context.Context, s *Server, line []byte) (any, error) {
	var args struct {
		envelope
		Name string `json:"name"`
	}
	if err := decodeArgs(line, &args); err != nil {
		return nil, err
	}
	if err := spec.ValidRuntimeName(args.Name); err != nil {
		return nil, err
	}
	rts, err := s.runtimes()
	if err != nil {
		return nil, err
	}
	return empty{}, rts.Remove(ctx, args.Name)
}
