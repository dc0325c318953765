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

// command is one protocol command: how it is dispatched, and how a request
// line becomes a call of it.
type command struct {
	name string
	kind
	// parse decodes a request line strictly and validates it: the one
	// decoding of a request. Its error is the reply, in the request's turn.
	parse func(line []byte) (call, error)
}

// kind is how a command is dispatched.
type kind struct {
	// perBox commands are ordered per box.
	perBox bool
	// takesSlot: the command runs a program in its box. It holds a
	// --parallel slot while it runs, and close_box and reset_box of its box
	// end it. Every other command starts at once. (install_package runs in
	// a box of its own, bounded by --max-installs.)
	takesSlot bool
	// resolvesBox: the command works in an open box, found when its turn
	// comes (no_such_box otherwise) and handed to it.
	resolvesBox bool
}

// call is a parsed request.
type call struct {
	box int // of a box command
	// boxes are the boxes of a command on several (run_group).
	boxes []int
	// endsRuns is the error with which the request ends the runs of its box
	// sent before it; nil for most.
	endsRuns error
	run      func(ctx context.Context, s *Server) (any, error)
}

// arguments are a command's arguments: a struct that embeds envelope,
// decoded from the whole line, that then validates itself.
type arguments interface{ validate() error }

// inBox is the arguments of a box command: they name the box.
type inBox interface{ boxID() int }

// inBoxes is the arguments of a command on several boxes: it waits for
// each of them.
type inBoxes interface{ boxIDs() []int }

// endingRuns is the arguments of a command that ends its box's runs.
type endingRuns interface{ endsRuns() error }

// typed makes the table entry of a command with arguments A and reply R:
// decode strictly once, validate, resolve the box, handle.
func typed[A any, P interface {
	*A
	arguments
}, R any](k kind, handle func(ctx context.Context, s *Server, a P, box spec.BoxInfo) (R, error)) *command {
	return &command{kind: k, parse: func(line []byte) (call, error) {
		a := P(new(A))
		if err := decodeArgs(line, a); err != nil {
			return call{}, err
		}
		if err := a.validate(); err != nil {
			return call{}, err
		}
		var c call
		if b, ok := any(a).(inBox); ok {
			c.box = b.boxID()
		}
		if b, ok := any(a).(inBoxes); ok {
			c.boxes = b.boxIDs()
		}
		if e, ok := any(a).(endingRuns); ok {
			c.endsRuns = e.endsRuns()
		}
		c.run = func(ctx context.Context, s *Server) (any, error) {
			var box spec.BoxInfo
			if k.resolvesBox {
				var err error
				if box, err = s.Exec.Box(c.box); err != nil {
					return nil, err
				}
			}
			r, err := handle(ctx, s, a, box)
			if err != nil {
				return nil, err
			}
			return r, nil
		}
		return c, nil
	}}
}

var commands map[string]*command

func init() {
	inABox := kind{perBox: true, resolvesBox: true}
	commands = map[string]*command{
		"run":         typed(kind{perBox: true, takesSlot: true, resolvesBox: true}, handleRun),
		"run_group":   typed(kind{perBox: true, takesSlot: true}, handleRunGroup),
		"open_box":    typed(kind{}, handleOpenBox),
		"close_box":   typed(kind{perBox: true}, handleCloseBox),
		"reset_box":   typed(kind{perBox: true}, handleResetBox),
		"box_path":    typed(inABox, handleBoxPath),
		"write_file":  typed(inABox, handleWriteFile),
		"read_file":   typed(inABox, handleReadFile),
		"list_files":  typed(inABox, handleListFiles),
		"remove_file": typed(inABox, handleRemoveFile),
		"version":     typed(kind{}, handleVersion),
		"stats":       typed(kind{}, handleStats),
		"cancel":      typed(kind{}, handleCancel),

		"install_package": typed(kind{}, handleInstallPackage),
		"list_runtimes":   typed(kind{}, handleListRuntimes),
		"remove_runtime":  typed(kind{}, handleRemoveRuntime),
	}
	for name, c := range commands {
		c.name = name
	}
}

// noArgs are the arguments of a command that takes none.
type noArgs struct{ envelope }

func (*noArgs) validate() error { return nil }

// boxArg is the optional box field of box commands; the default is box 0.
type boxArg struct {
	Box int `json:"box"`
}

func (a *boxArg) boxID() int { return a.Box }

type runArgs struct {
	envelope
	boxArg
	spec.RunRequest
}

func (a *runArgs) validate() error { return a.RunRequest.Validate() }

func handleRun(ctx context.Context, s *Server, a *runArgs, _ spec.BoxInfo) (spec.RunResult, error) {
	job, err := s.job(&a.RunRequest)
	if err != nil {
		return spec.RunResult{}, err
	}
	return s.Exec.Run(ctx, a.Box, job)
}

// job resolves a run request's runtime and makes its job.
func (s *Server) job(req *spec.RunRequest) (*executor.Job, error) {
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
	return executor.NewJob(req, rt), nil
}

type groupArgs struct {
	envelope
	spec.GroupRequest
}

func (a *groupArgs) validate() error { return a.GroupRequest.Validate() }

func (a *groupArgs) boxIDs() []int {
	ids := make([]int, len(a.Programs))
	for i, p := range a.Programs {
		ids[i] = p.Box
	}
	return ids
}

func handleRunGroup(ctx context.Context, s *Server, a *groupArgs, _ spec.BoxInfo) (spec.GroupResult, error) {
	g := &executor.Group{Pipes: a.Pipes, IdlenessTime: a.IdlenessTime}
	for i := range a.Programs {
		p := &a.Programs[i]
		job, err := s.job(&p.RunRequest)
		if err != nil {
			return spec.GroupResult{}, spec.Errorf(spec.CodeOf(err), "programs[%d]: %s", i, err.Error())
		}
		g.Members = append(g.Members, executor.GroupMember{Box: p.Box, Job: job})
	}
	return s.Exec.RunGroup(ctx, g)
}

type openBoxArgs struct {
	envelope
	spec.BoxOptions
}

func (a *openBoxArgs) validate() error { return a.BoxOptions.Validate() }

func handleOpenBox(_ context.Context, s *Server, a *openBoxArgs, _ spec.BoxInfo) (spec.OpenBoxReply, error) {
	id, err := s.Exec.OpenBox(a.BoxOptions)
	return spec.OpenBoxReply{Box: id}, err
}

type closeBoxArgs struct {
	envelope
	Box *int `json:"box"`
}

func (a *closeBoxArgs) validate() error {
	if a.Box == nil {
		return spec.Errorf(spec.CodeInvalidArgument, "close_box needs the box to close")
	}
	return nil
}

func (a *closeBoxArgs) boxID() int { return *a.Box }

func (a *closeBoxArgs) endsRuns() error {
	if *a.Box == executor.DefaultBox {
		return nil // refused: box 0 cannot be closed
	}
	return spec.Errorf(spec.CodeBoxClosed, "the run was ended by close_box of box %d", *a.Box)
}

func handleCloseBox(_ context.Context, s *Server, a *closeBoxArgs, _ spec.BoxInfo) (spec.Done, error) {
	return spec.Done{}, s.Exec.CloseBox(*a.Box)
}

type resetBoxArgs struct {
	envelope
	boxArg
}

func (*resetBoxArgs) validate() error { return nil }

func (a *resetBoxArgs) endsRuns() error {
	return spec.Errorf(spec.CodeBoxReset, "the run was ended by reset_box of box %d", a.Box)
}

func handleResetBox(_ context.Context, s *Server, a *resetBoxArgs, _ spec.BoxInfo) (spec.Done, error) {
	return spec.Done{}, s.Exec.ResetBox(a.Box)
}

type boxPathArgs struct {
	envelope
	boxArg
}

func (*boxPathArgs) validate() error { return nil }

func handleBoxPath(_ context.Context, _ *Server, _ *boxPathArgs, box spec.BoxInfo) (spec.BoxPathReply, error) {
	return spec.BoxPathReply{Path: box.SpaceDir}, nil
}

// fileArgs are the fields every file command has: the box, and the path as
// text or, for a name that is not UTF-8, as base64 of its bytes.
type fileArgs struct {
	envelope
	boxArg
	Path       string  `json:"path"`
	PathBase64 *string `json:"path_base64"`
	// path is the path named, either way.
	path string
}

func (a *fileArgs) validate() error {
	a.path = a.Path
	if a.PathBase64 != nil {
		if a.Path != "" {
			return spec.Errorf(spec.CodeInvalidArgument, "give path or path_base64, not both")
		}
		b, err := base64.StdEncoding.DecodeString(*a.PathBase64)
		if err != nil {
			return spec.Errorf(spec.CodeInvalidArgument, "path_base64: %v", err)
		}
		a.path = string(b)
	}
	return nil
}

type writeFileArgs struct {
	fileArgs
	Content       *string `json:"content"`
	ContentBase64 *string `json:"content_base64"`
	Mode          *uint32 `json:"mode"`
}

func handleWriteFile(_ context.Context, _ *Server, a *writeFileArgs, box spec.BoxInfo) (spec.WriteFileReply, error) {
	var data []byte
	switch {
	case a.Content != nil && a.ContentBase64 != nil:
		return spec.WriteFileReply{}, spec.Errorf(spec.CodeInvalidArgument, "give content or content_base64, not both")
	case a.Content != nil:
		data = []byte(*a.Content)
	case a.ContentBase64 != nil:
		var err error
		if data, err = base64.StdEncoding.DecodeString(*a.ContentBase64); err != nil {
			return spec.WriteFileReply{}, spec.Errorf(spec.CodeInvalidArgument, "content_base64: %v", err)
		}
	}
	mode := os.FileMode(0o644)
	if a.Mode != nil {
		if *a.Mode > 0o777 {
			return spec.WriteFileReply{}, spec.Errorf(spec.CodeInvalidArgument, "mode must be permission bits, 0 to 0777 (511)")
		}
		mode = os.FileMode(*a.Mode)
	}
	n, err := boxfs.Space{BoxInfo: box}.WriteFile(a.path, data, mode)
	return spec.WriteFileReply{Size: n}, err
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

func handleReadFile(_ context.Context, _ *Server, a *readFileArgs, box spec.BoxInfo) (spec.ReadFileReply, error) {
	max := int64(defaultReadBytes)
	if a.MaxBytes != nil {
		max = *a.MaxBytes
	}
	if max < 0 || max > maxReadBytes || a.Offset < 0 {
		return spec.ReadFileReply{}, spec.Errorf(spec.CodeInvalidArgument, "max_bytes must be 0 to %d and offset at least 0", maxReadBytes)
	}
	if a.Encoding != "" && a.Encoding != "utf8" && a.Encoding != "base64" {
		return spec.ReadFileReply{}, spec.Errorf(spec.CodeInvalidArgument, "encoding must be \"utf8\" or \"base64\"")
	}
	data, size, truncated, err := boxfs.Space{BoxInfo: box}.ReadFile(a.path, a.Offset, max)
	if err != nil {
		return spec.ReadFileReply{}, err
	}
	content := string(data)
	if a.Encoding == "base64" {
		content = base64.StdEncoding.EncodeToString(data)
	} else if !utf8.Valid(data) {
		return spec.ReadFileReply{}, spec.Errorf(spec.CodeInvalidArgument, "%s is not valid UTF-8 text: read it with \"encoding\": \"base64\"", spec.Quote(a.path))
	}
	return spec.ReadFileReply{Content: content, Size: size, Truncated: truncated}, nil
}

func handleListFiles(_ context.Context, _ *Server, a *fileArgs, box spec.BoxInfo) (spec.ListFilesReply, error) {
	entries, err := boxfs.Space{BoxInfo: box}.ListFiles(a.path)
	return spec.ListFilesReply{Entries: entries}, err
}

func handleRemoveFile(_ context.Context, _ *Server, a *fileArgs, box spec.BoxInfo) (spec.Done, error) {
	return spec.Done{}, boxfs.Space{BoxInfo: box}.RemoveFile(a.path)
}

func handleVersion(_ context.Context, s *Server, _ *noArgs, _ spec.BoxInfo) (spec.VersionReply, error) {
	return spec.VersionReply{Version: s.Version, Protocol: 1}, nil
}

func (s *Server) runtimes() (Runtimes, error) {
	if s.Runtimes == nil {
		return nil, spec.Errorf(spec.CodeNoSuchRuntime, "this sandboxd keeps no runtimes")
	}
	return s.Runtimes, nil
}

type installArgs struct {
	envelope
	spec.InstallRequest
}

func (a *installArgs) validate() error { return a.InstallRequest.Validate() }

func handleInstallPackage(ctx context.Context, s *Server, a *installArgs, _ spec.BoxInfo) (*spec.InstallResult, error) {
	rts, err := s.runtimes()
	if err != nil {
		return nil, err
	}
	return rts.Install(ctx, &a.InstallRequest)
}

func handleListRuntimes(ctx context.Context, s *Server, _ *noArgs, _ spec.BoxInfo) (spec.ListRuntimesReply, error) {
	rts, err := s.runtimes()
	if err != nil {
		return spec.ListRuntimesReply{}, err
	}
	list, err := rts.List(ctx)
	return spec.ListRuntimesReply{Runtimes: list}, err
}

type removeRuntimeArgs struct {
	envelope
	Name string `json:"name"`
}

func (a *removeRuntimeArgs) validate() error { return spec.ValidRuntimeName(a.Name) }

func handleRemoveRuntime(ctx context.Context, s *Server, a *removeRuntimeArgs, _ spec.BoxInfo) (spec.Done, error) {
	rts, err := s.runtimes()
	if err != nil {
		return spec.Done{}, err
	}
	return spec.Done{}, rts.Remove(ctx, a.Name)
}
