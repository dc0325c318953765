package executor

import (
	"fmt"
	"sync"

	"sandboxd/spec"
)

// boxTable holds an executor's open boxes by id; each backend keeps its own
// kind of box B in one.
type boxTable[B any] struct {
	mu    sync.Mutex
	boxes map[int]*B // a nil box is an id reserved while its box is built
}

func newBoxTable[B any]() *boxTable[B] { return &boxTable[B]{boxes: map[int]*B{}} }

// anyBox asks open for the lowest free id.
const anyBox = -1

// open builds a box with build and records it under id, or under the lowest
// free id when id is anyBox, and returns the id.
func (t *boxTable[B]) open(id int, build func(id int) (*B, error)) (int, error) {
	t.mu.Lock()
	if id == anyBox {
		id = lowestFree(1, MaxBoxes, func(i int) bool { _, used := t.boxes[i]; return used })
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
func (t *boxTable[B]) get(id int) (*B, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.boxes[id]
	if b == nil {
		return nil, spec.Errorf(spec.CodeNoSuchBox, "no box %d is open", id)
	}
	return b, nil
}

// remove takes a box out of the table for closing. Box 0 stays for the life
// of the executor.
func (t *boxTable[B]) remove(id int) (*B, error) {
	if id == DefaultBox {
		return nil, spec.Errorf(spec.CodeInvalidArgument, "box 0 always exists; use reset_box to empty it")
	}
	b, err := t.get(id)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	delete(t.boxes, id)
	t.mu.Unlock()
	return b, nil
}

// removeAll takes every built box out of the table.
func (t *boxTable[B]) removeAll() []*B {
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
