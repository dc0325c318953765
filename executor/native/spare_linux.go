package native

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"sandboxd/boxfs"
	"sandboxd/spec"
)

// A box's init takes tens of milliseconds to start (a process in new
// namespaces, the Go runtime, the root's mounts), ten times what handing
// out a built one costs. So one box is kept built ahead of time, with the
// default options and no owner: a spare, whose init and files open_box and
// reset_box take for the box (adoptSpare). It is built again in the background
// as soon as it is taken. A spare is in the state dir (boxes/spare-N) and
// its init dies with sandboxd, as every box's does; it has no cgroups
// until it is a box's.

// spares keeps the next spare: a maker builds one, waits until it is
// taken, and builds the next.
type spares struct {
	// proto is the init configuration of every spare, its paths left out.
	proto initConfig
	// made carries each spare built, or why it could not be.
	made chan madeSpare
	// wanted tells the maker that a spare is awaited.
	wanted  chan struct{}
	closing chan struct{}
	maker   sync.WaitGroup
}

// firstSpareDelay is how long after box 0 has started the first spare
// waits to be built, unless a box is wanted sooner: a judge's first run,
// often sent at once, does not share the CPUs with it.
const firstSpareDelay = 50 * time.Millisecond

type madeSpare struct {
	b   *box
	err error
}

// startSpares starts the maker of spares made by build, once after is
// closed and firstSpareDelay has passed, or once a spare is wanted.
func startSpares(proto initConfig, build func() (*box, error), after <-chan struct{}) *spares {
	s := &spares{proto: withoutPaths(proto), made: make(chan madeSpare), wanted: make(chan struct{}, 1), closing: make(chan struct{})}
	s.maker.Add(1)
	go func() {
		defer s.maker.Done()
		// A box wanted first needs no delay, nor box 0's init: a reset_box
		// of box 0 sent at once holds box 0 before its start in the background.
		select {
		case <-after:
			select {
			case <-time.After(firstSpareDelay):
			case <-s.wanted:
			case <-s.closing:
				return
			}
		case <-s.wanted:
		case <-s.closing:
			return
		}
		for {
			// A build that failed is told to the next taker, who reports it;
			// the next build starts only then, so a host where boxes cannot
			// start does not spin.
			b, err := build()
			select {
			case s.made <- madeSpare{b, err}:
			case <-s.closing:
				if b != nil {
					b.close()
				}
				return
			}
		}
	}()
	return s
}

// fits tells whether a box configured as c can be made of a spare: its
// init would build the same root.
func (s *spares) fits(c boxConfig) bool {
	return reflect.DeepEqual(withoutPaths(c.init), s.proto)
}

func withoutPaths(c initConfig) initConfig {
	c.Root, c.Space, c.Tmp = "", "", ""
	return c
}

var errClosing = errors.New("sandboxd is closing")

// take hands out the spare, waiting for the one being built.
func (s *spares) take() (*box, error) {
	select {
	case s.wanted <- struct{}{}:
	default:
	}
	select {
	case sp := <-s.made:
		return sp.b, sp.err
	case <-s.closing:
		return nil, errClosing
	}
}

// stop stops the maker and closes the spare it holds.
func (s *spares) stop() {
	close(s.closing)
	s.maker.Wait()
}

// buildSpare builds a spare: a box with the default options, its
// directories and init ready, owned by root and accounted nowhere. Only
// the maker calls it.
func (n *Executor) buildSpare() (*box, error) {
	n.spareSerial++
	dir := filepath.Join(n.cfg.StateDir, "boxes", "spare-"+strconv.Itoa(n.spareSerial))
	b := newBox(n.boxConfigAt(-1, dir, 0, spec.BoxOptions{}.WithDefaults(n.cfg.Dirs)), n.cgroups)
	err := b.mountDirs()
	if err == nil {
		err = b.spawnInit()
	}
	if err != nil {
		b.close()
		return nil, fmt.Errorf("build a box: %w", err)
	}
	return b, nil
}

// adoptSpare makes spare s box b: the spare's directory becomes b's (b has
// none), its /space and /tmp get b's quotas and owner, and its init b's
// accounting. The spare is spent; when adoptSpare fails, b is left without
// an init, for its next run to start one.
func (b *box) adoptSpare(s *box) error {
	if err := os.Rename(s.dir, b.dir); err != nil {
		s.close()
		return fmt.Errorf("take a prepared box: %w", err)
	}
	b.initProc, b.initSaid, b.ctl, b.kill, b.mounted = s.initProc, s.initSaid, s.ctl, s.kill, true
	b.initSaid.setBox(b.id)
	if err := b.fitDirs(); err != nil {
		return b.initFailed(err)
	}
	return b.attach()
}

// fitDirs gives a spare's /space and /tmp, now the box's, the box's quotas
// and owner. The spare's are empty, so any quota fits.
func (b *box) fitDirs() error {
	for _, d := range b.boxDirs() {
		data := fmt.Sprintf("size=%d,nr_inodes=%d", b.opts.QuotaSpace, b.opts.QuotaInodes)
		if err := unix.Mount("", d.dir, "", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
			return fmt.Errorf("size box tmpfs %s: %w", d.dir, err)
		}
	}
	return b.ownDirs()
}

// removeDir removes the box's directory, whose /space and /tmp are unmounted.
func (b *box) removeDir() error {
	if err := boxfs.RemoveAll(b.dir); err != nil {
		return fmt.Errorf("remove box dir: %w", err)
	}
	return nil
}
