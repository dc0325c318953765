package executor

import (
	"fmt"
	"sync"

	"sandboxd/spec"
)

// BoxTable holds an executor's open boxes by id; each backend keeps its own
// kind of box B in one.
type BoxTable[B any] struct {
	mu    sync.Mutex
	boxes map[int]*B // a nil box is an id taken while its box is built or closed
}

func NewBoxTable[B any]() *BoxTable[B] { return &BoxTable[B]{boxes: map[int]*B{}} }

// AnyBox asks open for the lowest free id.
const AnyBox = -1

// Open builds a box with options opts by build, and records it under id,
// or under the lowest free id when id is AnyBox, and returns the id. The
// options get their defaults first (dirs: the directories shown when opts
// names none), and the directories shown must keep apart from the state dir.
func (t *BoxTable[B]) Open(id int, opts spec.BoxOptions, dirs []string, stateDir string, build func(id int, opts spec.BoxOptions) (*B, error)) (int, error) {
	opts = opts.WithDefaults(dirs)
	return t.open(id, func(id int) (*B, error) {
		if err := checkDirsApart(opts.Dirs, stateDir); err != nil {
			return nil, err
		}
		return build(id, opts)
	})
}

func (t *BoxTable[B]) open(id int, build func(id int) (*B, error)) (int, error) {
	t.mu.Lock()
	if id == AnyBox {
		id = LowestFree(1, MaxBoxes, func(i int) bool { _, used := t.boxes[i]; return used })
		if id < 0 {
			t.mu.Unlock()
			return 0, spec.Errorf(spec.CodeTooManyBoxes, "all %d boxes are open", MaxBoxes)
		}
	}
	t.boxes[id] = nil
	t.mu.Unlock()

	b, err := build(id)
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		delete(t.boxes, id)
		return 0, fmt.Errorf("open box %d: %w", id, err)
	}
	t.boxes[id] = b
	return id, nil
}

// get finds an open box.
func (t *BoxTable[B]) Get(id int) (*B, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.boxes[id]
	if b == nil {
		return nil, spec.Errorf(spec.CodeNoSuchBox, "no box %d is open", id)
	}
	return b, nil
}

// close takes a box out of use and closes it with closeBox. Its id stays
// taken until closeBox has succeeded: a box opened meanwhile must not get
// the directories of one being removed. (After a failed close the id stays
// taken for good, as what is left of the box may be in the way.) Box 0
// stays for the life of the executor.
func (t *BoxTable[B]) Close(id int, closeBox func(*B) error) error {
	if id == DefaultBox {
		return spec.Errorf(spec.CodeInvalidArgument, "box 0 always exists; use reset_box to empty it")
	}
	t.mu.Lock()
	b := t.boxes[id]
	if b == nil {
		t.mu.Unlock()
		return spec.Errorf(spec.CodeNoSuchBox, "no box %d is open", id)
	}
	t.boxes[id] = nil // taken, but no box: as while it is built
	t.mu.Unlock()
	if err := closeBox(b); err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.boxes, id)
	t.mu.Unlock()
	return nil
}

// Len counts the boxes built and not being closed.
func (t *BoxTable[B]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, b := range t.boxes {
		if b != nil {
			n++
		}
	}
	return n
}

// removeAll takes every built box out of the table.
func (t *BoxTable[B]) RemoveAll() []*B {
	t.mu.Lock()
	defer t.mu.Unlock()
	var all []*B
	for _, b := range t.boxes {
		if b != nil {
			all = append(all, b)
		}
	}
	t.boxes = map[int]*B{}
	return all
}
