// Package protocol speaks sandboxd's protocol: JSON objects, one per line,
// both ways. It frames and decodes requests, dispatches them (one at a time
// per box, boxes in parallel), and writes one reply line per request line.
package protocol

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"sandboxd/executor"
	"sandboxd/spec"
)

// Server serves one protocol stream.
type Server struct {
	Exec executor.Executor
	// Runtimes resolves and manages installed runtimes; nil when the host has none.
	Runtimes Runtimes
	// Parallel bounds the runs executed at once (default: the number of CPUs).
	Parallel int
	// MaxLine bounds a request line in bytes (default DefaultMaxLine).
	MaxLine int
	// Version is reported by the `version` command.
	Version string
	// Observe, when set, hears of every command handled: its name, how
	// long it took and its error (nil on success). The caller logs.
	Observe func(command string, took time.Duration, err error)

	out  *bufio.Writer
	outM sync.Mutex
	sem  chan struct{}

	queuesM sync.Mutex
	queues  map[int]*boxQueue
	// inflight are the requests with an id not yet answered, by idKey;
	// under queuesM. cancel finds its targets there.
	inflight map[string][]*request
	wg       sync.WaitGroup

	started time.Time
	counts  runCounts
}

// boxQueue holds the requests waiting for one box, in arrival order.
type boxQueue struct {
	pending []*request
	// current is the request being executed; nil between requests.
	current *request
}

type request struct {
	id  json.RawMessage
	cmd *command
	// call is the parsed request; err, when set, is its reply instead.
	call call
	err  error
	box  int
	// boxes are the boxes of a run_group, which waits for each of them.
	boxes []int
	// group is the turn of a run_group on more than one box; nil otherwise.
	group *groupTurn
	// end ends a run while it is current, with the cause given.
	end context.CancelCauseFunc
	// ended, of a close_box or reset_box that took queued runs out of its
	// box's queue, is closed once they are answered: it is answered after them.
	ended chan struct{}
	// key is the id as cancel names it (idKey); empty without an id.
	key string
	// Of a run or run_group (takesSlot): counted by runs_queued and
	// runs_running, being valid; running, once it holds a slot (under
	// counts.mu); answered is closed once its reply is written.
	counted, running bool
	answered         chan struct{}
}

// groupTurn is a run_group's wait for its boxes. It is queued on each of
// them at once, under queuesM, so every queue holds the groups in arrival
// order and two groups that share boxes cannot wait for each other. The
// drainer of each box that reaches it counts itself in; the last runs it,
// the others hold their box until it is done.
type groupTurn struct {
	ctx     context.Context // ended by end, from the moment it is queued
	arrived int
	// takenOut: a cancel took it out of its queues (under queuesM); that
	// cancel answers it, and a second cancel must not answer it again.
	takenOut bool
	done     chan struct{}
}

// endRuns ends the runs of the queue: the current one is killed with
// cause, and queued ones are taken out, to be answered with cause.
func (q *boxQueue) endRuns(cause error) (dropped []*request) {
	if q.current != nil && q.current.end != nil {
		q.current.end(cause)
	}
	kept := q.pending[:0]
	for _, r := range q.pending {
		if r.group != nil {
			// Queued on other boxes too: it stays, and is answered with
			// cause when its turn comes.
			r.end(cause)
			kept = append(kept, r)
		} else if r.cmd.takesSlot {
			dropped = append(dropped, r)
		} else {
			kept = append(kept, r)
		}
	}
	q.pending = kept
	return dropped
}

// Serve reads requests from in and writes replies to out until the end of
// input, then waits for every request in flight and returns nil. When ctx
// ends, runs in flight are killed and answered with an error, requests not
// yet started are answered with shutting_down, and Serve returns ctx's error.
func (s *Server) Serve(ctx context.Context, in io.Reader, out io.Writer) error {
	if s.Parallel <= 0 {
		s.Parallel = runtime.NumCPU()
	}
	if s.MaxLine <= 0 {
		s.MaxLine = DefaultMaxLine
	}
	s.out = bufio.NewWriterSize(out, 64<<10)
	s.sem = make(chan struct{}, s.Parallel)
	s.queues = map[int]*boxQueue{}
	s.inflight = map[string][]*request{}
	s.started = time.Now()
	s.counts.init()

	r := &reader{s: s, ctx: ctx, lines: newLineReader(in, s.MaxLine), errs: make(chan error, 1)}
	go r.loop()
	select {
	case err := <-r.errs:
		s.wg.Wait()
		if err == io.EOF {
			return nil
		}
		return err
	case <-ctx.Done():
		r.mu.Lock()
		r.stopped = true
		r.mu.Unlock()
		s.wg.Wait()
		return ctx.Err()
	}
}

// Prepare builds ahead of time what a first `version` request and its reply
// need (the clients' handshake, often a judge's first request): goccy/go-json
// compiles a type's decoder or encoder on its first use, about 0.7 ms of
// the first reply here, mostly page faults. sandboxd calls it while its
// executor starts. The request header's decoder serves any first request.
func Prepare() {
	line := []byte(`{"command":"version"}`)
	var h header
	_ = json.Unmarshal(line, &h)
	_, _ = commands["version"].parse(line)
	_, _ = json.Marshal(spec.VersionReply{})
}

// reader reads and dispatches request lines. The goroutine that reads a
// request that must start now runs it itself, after starting a new reader
// in its place: the request does not wait for another goroutine to wake.
type reader struct {
	s     *Server
	ctx   context.Context
	lines *lineReader
	errs  chan error // the end of input, or a read error
	// stopped (under mu) closes the door when ctx ends, so that no request
	// is added while Serve waits for those in flight.
	mu      sync.Mutex
	stopped bool
}

func (r *reader) loop() {
	for {
		line, err := r.lines.next()
		if err != nil && err != errLineTooLong {
			r.errs <- err
			return
		}
		r.mu.Lock()
		var work func()
		switch {
		case r.stopped:
			r.mu.Unlock()
			return
		case err == errLineTooLong:
			r.s.reply(nil, nil, spec.Errorf(spec.CodeLineTooLong, "request line longer than %d bytes was skipped", r.s.MaxLine))
		default:
			work = r.s.accept(r.ctx, append([]byte(nil), line...))
		}
		r.mu.Unlock()
		if work != nil {
			go r.loop()
			work()
			return
		}
	}
}

// accept parses a request far enough to dispatch it, answering at once
// what cannot be dispatched. It returns the work to start now, if any: the
// request, or the draining of its box's queue.
func (s *Server) accept(ctx context.Context, line []byte) (work func()) {
	trimmed := bytes.Trim(line, jsonSpace)
	if len(trimmed) == 0 {
		return nil // blank lines are not requests
	}
	if bytes.Equal(trimmed, []byte("null")) {
		s.reply(nil, nil, spec.Errorf(spec.CodeBadJSON, "request is not a JSON object: null"))
		return nil
	}
	var h header
	decodeErr := json.Unmarshal(line, &h)
	if decodeErr != nil {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(line, &m); err != nil {
			s.reply(nil, nil, spec.Errorf(spec.CodeBadJSON, "request is not a JSON object: %v", err))
			return nil
		}
		// A JSON object whose command, id or box has the wrong type: its id
		// is still echoed if it can be.
		h = header{envelope: envelope{ID: m["id"]}}
	}
	if string(h.ID) == "null" {
		h.ID = nil // a null id is no id, as a null field is an absent one
	}
	if !validID(h.ID) {
		msg := "id must be a string or an integer"
		if h.ID[0] == '"' {
			msg = "id must be a string of valid Unicode: UTF-8, no lone surrogate"
		}
		s.reply(nil, nil, spec.Errorf(spec.CodeInvalidArgument, "%s", msg))
		return nil
	}
	if err := checkText(line); err != nil {
		s.reply(h.ID, nil, err)
		return nil
	}
	if decodeErr != nil {
		s.reply(h.ID, nil, argsError(decodeErr))
		return nil
	}
	cmd, ok := commands[h.Command]
	if !ok {
		if h.Command == "" {
			s.reply(h.ID, nil, spec.Errorf(spec.CodeInvalidArgument, "request has no command"))
		} else {
			s.reply(h.ID, nil, spec.Errorf(spec.CodeUnknownCommand, "unknown command %s", spec.Quote(h.Command)))
		}
		return nil
	}
	c, err := cmd.parse(line)
	req := &request{id: h.ID, cmd: cmd, call: c, err: err, box: c.box, boxes: c.boxes, key: idKey(h.ID)}
	if cmd.takesSlot {
		req.answered = make(chan struct{})
		req.counted = err == nil
		s.counts.queue(req)
	}
	if req.key != "" {
		s.queuesM.Lock()
		s.inflight[req.key] = append(s.inflight[req.key], req)
		s.queuesM.Unlock()
	}
	s.wg.Add(1)
	if !cmd.perBox {
		return func() {
			defer s.wg.Done()
			s.execute(ctx, req)
		}
	}
	if err != nil && h.Box != nil {
		req.box = *h.Box // refused, but in its box's turn
	}
	if len(req.boxes) == 0 {
		req.boxes = []int{req.box}
	} else if len(req.boxes) > 1 {
		req.group = &groupTurn{done: make(chan struct{})}
		req.group.ctx, req.end = context.WithCancelCause(ctx)
	}
	endCause := c.endsRuns // nil when refused: a refused request ends nothing
	var dropped []*request
	var idle []int // boxes whose queue this request starts
	s.queuesM.Lock()
	for _, box := range req.boxes {
		q, busy := s.queues[box]
		if !busy {
			q = &boxQueue{}
			s.queues[box] = q
			idle = append(idle, box)
		}
		if endCause != nil {
			dropped = q.endRuns(endCause)
		}
		if len(dropped) > 0 {
			req.ended = make(chan struct{})
		}
		q.pending = append(q.pending, req)
	}
	drains := make([]func(), len(idle))
	for i, box := range idle {
		q := s.queues[box]
		drains[i] = func() { s.drain(ctx, box, q) }
	}
	s.queuesM.Unlock()
	for _, r := range dropped {
		s.answer(r, nil, endCause)
		s.wg.Done()
	}
	if req.ended != nil {
		close(req.ended)
	}
	if len(drains) == 0 {
		return nil // the boxes' drainers will run it
	}
	for _, d := range drains[1:] {
		go d()
	}
	return drains[0]
}

// drain executes a box's requests in order until its queue is empty. A run
// gets a context of its own, which close_box and reset_box end.
func (s *Server) drain(ctx context.Context, box int, q *boxQueue) {
	for {
		s.queuesM.Lock()
		q.current = nil
		if len(q.pending) == 0 {
			delete(s.queues, box)
			s.queuesM.Unlock()
			return
		}
		req := q.pending[0]
		q.pending = q.pending[1:]
		q.current = req
		reqCtx := ctx
		if g := req.group; g != nil {
			g.arrived++
			last := g.arrived == len(req.boxes)
			s.queuesM.Unlock()
			if !last {
				<-g.done // the box is held for the group
				continue
			}
			s.execute(g.ctx, req)
			req.end(nil)
			close(g.done)
			s.wg.Done()
			continue
		}
		if req.cmd.takesSlot {
			reqCtx, req.end = context.WithCancelCause(ctx)
		}
		s.queuesM.Unlock()
		if req.ended != nil {
			<-req.ended
		}
		s.execute(reqCtx, req)
		if req.end != nil {
			req.end(nil)
		}
		s.wg.Done()
	}
}

// execute runs a request, once it has a --parallel slot if it needs one.
func (s *Server) execute(ctx context.Context, req *request) {
	if req.cmd.takesSlot && ctx.Err() == nil {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		case <-ctx.Done():
		}
	}
	if ctx.Err() != nil {
		s.answer(req, nil, spec.Ended(ctx, "not started"))
		return
	}
	s.counts.start(req)
	s.handle(ctx, req)
}

// handle runs a request and replies.
func (s *Server) handle(ctx context.Context, req *request) {
	start := time.Now()
	var result any
	err := req.err
	if err == nil {
		result, err = req.call.run(ctx, s)
	}
	s.answer(req, result, err)
	if s.Observe != nil {
		s.Observe(req.cmd.name, time.Since(start), err)
	}
}

// answer counts a request for stats and takes it out of the requests in
// flight, then replies to it: a stats or a cancel sent after the reply sees
// it counted and gone. Every request is answered once.
func (s *Server) answer(req *request, result any, err error) {
	if req.cmd.takesSlot {
		s.counts.finish(req, result, err)
	}
	// Out of flight before the reply is written: a cancel the judge sends
	// on the reply finds no request (no_such_request), as PROTOCOL.md says.
	if req.key != "" {
		s.queuesM.Lock()
		same := s.inflight[req.key]
		if i := slices.Index(same, req); i >= 0 {
			same = slices.Delete(same, i, i+1)
		}
		if len(same) == 0 {
			delete(s.inflight, req.key)
		} else {
			s.inflight[req.key] = same
		}
		s.queuesM.Unlock()
	}
	s.reply(req.id, result, err)
	if req.cmd.takesSlot {
		close(req.answered)
	}
}

// jsonSpace is the white space JSON allows between tokens; a line of only
// these is blank.
const jsonSpace = " \t\r"

// maxMessage bounds an error message. Messages quote at most a prefix of
// what a judge or a program sent (spec.Quote); this bound holds for the
// rest, such as a long host path in an internal error (the log keeps it whole).
const maxMessage = 1 << 10

type errorBody struct {
	Code    spec.Code `json:"code"`
	Message string    `json:"message"`
}

// reply writes one reply line: {"id":…, …result} or {"id":…, "error":{…}}.
func (s *Server) reply(id json.RawMessage, result any, err error) {
	var body []byte
	if err != nil {
		body, _ = json.Marshal(struct {
			Error errorBody `json:"error"`
		}{errorBody{spec.CodeOf(err), spec.Clip(err.Error(), maxMessage)}})
	} else if body, err = json.Marshal(result); err != nil {
		body, _ = json.Marshal(struct {
			Error errorBody `json:"error"`
		}{errorBody{spec.CodeInternal, "encode reply: " + err.Error()}})
	}
	s.outM.Lock()
	defer s.outM.Unlock()
	if len(id) > 0 {
		s.out.WriteString(`{"id":`)
		s.out.Write(id)
		if len(body) > 2 {
			s.out.WriteByte(',')
		}
		s.out.Write(body[1:])
	} else {
		s.out.Write(body)
	}
	s.out.WriteByte('\n')
	s.out.Flush()
}
