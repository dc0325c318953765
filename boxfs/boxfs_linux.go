// Package boxfs reads and writes the files of a box's /space from the host.
// Every path is resolved by the kernel inside /space (openat2 with
// RESOLVE_IN_ROOT), so neither "..", nor an absolute path, nor a symlink a
// program planted can lead outside the box.
package boxfs

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"

	"sandboxd/spec"
)

// Space is a box's /space as the host sees it.
type Space struct {
	spec.BoxInfo
}

// relPath turns a request path into a path relative to /space. Absolute
// paths must lie inside /space.
func relPath(p string, allowRoot bool) (string, error) {
	if strings.IndexByte(p, 0) >= 0 {
		return "", spec.Errorf(spec.CodeInvalidArgument, "path must not contain NUL bytes")
	}
	if len(p) > spec.MaxPath {
		return "", spec.Errorf(spec.CodeInvalidArgument, "a path of %d bytes is longer than %d", len(p), spec.MaxPath)
	}
	clean := spec.BoxPath(p)
	if clean != spec.SpaceDir && !strings.HasPrefix(clean, spec.SpaceDir+"/") {
		return "", spec.Errorf(spec.CodeInvalidArgument, "path %s is outside /space", spec.Quote(p))
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(clean, spec.SpaceDir), "/")
	if rel == "" {
		if !allowRoot {
			return "", spec.Errorf(spec.CodeInvalidArgument, "path %s names /space itself", spec.Quote(p))
		}
		rel = "."
	}
	return rel, nil
}

func (s Space) openRoot() (int, error) {
	fd, err := unix.Open(s.SpaceDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open box space: %w", err)
	}
	return fd, nil
}

// openIn opens rel inside the box's /space.
func (s Space) openIn(rel string, flags uint64, mode uint64) (int, error) {
	root, err := s.openRoot()
	if err != nil {
		return -1, err
	}
	defer unix.Close(root)
	return openBeneath(root, rel, flags, mode)
}

func openBeneath(dirfd int, rel string, flags uint64, mode uint64) (int, error) {
	how := &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV}
	for {
		fd, err := unix.Openat2(dirfd, rel, how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		return fd, err
	}
}

// fileError gives an error from the file system its protocol code.
func fileError(op, p string, err error) error {
	p = spec.Quote(p)
	switch {
	case errors.Is(err, unix.ENOENT):
		return spec.Errorf(spec.CodeNoSuchFile, "%s %s: no such file or directory", op, p)
	case errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT), errors.Is(err, unix.EFBIG):
		return spec.Errorf(spec.CodeQuotaExceeded, "%s %s: the box's space quota is exhausted", op, p)
	case errors.Is(err, unix.ENXIO): // a FIFO or socket, opened without waiting
		return spec.Errorf(spec.CodeInvalidArgument, "%s %s: not a regular file", op, p)
	case errors.Is(err, unix.EISDIR), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOTEMPTY),
		errors.Is(err, unix.ENAMETOOLONG):
		return spec.Errorf(spec.CodeInvalidArgument, "%s %s: %v", op, p, err)
	}
	return fmt.Errorf("%s %s: %w", op, p, err)
}

// WriteFile creates or replaces a file in /space, with its parent
// directories, owned by the box user.
func (s Space) WriteFile(p string, data []byte, mode os.FileMode) (int64, error) {
	rel, err := relPath(p, false)
	if err != nil {
		return 0, err
	}
	if dir := path.Dir(rel); dir != "." {
		if err := s.mkdirAll(dir); err != nil {
			return 0, fileError("write", p, err)
		}
	}
	// Non-blocking and truncated only once known to be a regular file: a
	// program may have left a FIFO at the path, which would block forever.
	fd, err := s.openIn(rel, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK, uint64(mode.Perm()))
	if err != nil {
		return 0, fileError("write", p, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return 0, spec.Errorf(spec.CodeInvalidArgument, "write %s: not a regular file", spec.Quote(p))
	}
	if err := f.Truncate(0); err != nil {
		return 0, fileError("write", p, err)
	}
	if err := f.Chown(s.UID, s.GID); err != nil {
		return 0, fileError("write", p, err)
	}
	if err := f.Chmod(mode.Perm()); err != nil {
		return 0, fileError("write", p, err)
	}
	n, err := f.Write(data)
	if err != nil {
		return int64(n), fileError("write", p, err)
	}
	return int64(n), nil
}

// mkdirAll creates the directories of rel that are missing, owned by the box user.
func (s Space) mkdirAll(rel string) error {
	root, err := s.openRoot()
	if err != nil {
		return err
	}
	defer unix.Close(root)
	dir := ""
	for _, part := range strings.Split(rel, "/") {
		dir = path.Join(dir, part)
		fd, err := openBeneath(root, dir, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		parent, err := openBeneath(root, path.Dir(dir), unix.O_PATH|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		err = unix.Mkdirat(parent, part, 0o755)
		if err == nil {
			err = unix.Fchownat(parent, part, s.UID, s.GID, unix.AT_SYMLINK_NOFOLLOW)
		}
		unix.Close(parent)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return err
		}
	}
	return nil
}

// ReadFile reads up to max bytes of a file from offset, and tells the file's
// size and whether bytes remain past what was read.
func (s Space) ReadFile(p string, offset, max int64) (data []byte, size int64, truncated bool, err error) {
	rel, err := relPath(p, false)
	if err != nil {
		return nil, 0, false, err
	}
	fd, err := s.openIn(rel, unix.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, 0, false, fileError("read", p, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, false, fileError("read", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, false, spec.Errorf(spec.CodeInvalidArgument, "read %s: not a regular file", spec.Quote(p))
	}
	size = fi.Size()
	if offset >= size {
		return []byte{}, size, false, nil
	}
	n := size - offset
	if n > max {
		n = max
	}
	data = make([]byte, n)
	got, err := f.ReadAt(data, offset)
	if err != nil && err != io.EOF {
		return nil, 0, false, fileError("read", p, err)
	}
	data = data[:got]
	return data, size, offset+int64(got) < size, nil
}

// ListFiles lists a directory of /space, sorted by name.
func (s Space) ListFiles(p string) ([]spec.FileEntry, error) {
	rel, err := relPath(p, true)
	if err != nil {
		return nil, err
	}
	fd, err := s.openIn(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, fileError("list", p, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fileError("list", p, err)
	}
	sort.Strings(names)
	entries := make([]spec.FileEntry, 0, len(names))
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		e := spec.FileEntry{Name: name, Type: fileType(st.Mode), Size: st.Size, Mode: st.Mode & 0o7777}
		if !utf8.ValidString(name) {
			e.Name, e.NameBase64 = strings.ToValidUTF8(name, "\uFFFD"), base64.StdEncoding.EncodeToString([]byte(name))
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	}
	return "other"
}

// RemoveFile removes a file, a symlink (never what it points to) or a
// directory with everything in it.
func (s Space) RemoveFile(p string) error {
	rel, err := relPath(p, false)
	if err != nil {
		return err
	}
	parent, err := s.openIn(path.Dir(rel), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return fileError("remove", p, err)
	}
	defer unix.Close(parent)
	if err := removeAt(parent, path.Base(rel)); err != nil {
		return fileError("remove", p, err)
	}
	return nil
}

// RemoveAll removes a host path and, if it is a directory, everything in
// it, as removeAt does; a path that does not exist is not an error.
func RemoveAll(p string) error {
	parent, err := unix.Open(path.Dir(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	defer unix.Close(parent)
	if err := removeAt(parent, path.Base(p)); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

// removeAt removes name from directory dirfd: a file, a symlink (never what
// it points to), or a directory with everything in it. However deep a tree
// is, it holds two descriptors: the directory being emptied and, going up,
// its parent, reached through ".." and checked to be the directory it came
// down from. Per level it keeps names only: the directory's own, and its
// subdirectories still to remove.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	r := &treeRemover{top: dirfd, dir: -1, buf: make([]byte, 32<<10)}
	defer func() {
		if r.dir >= 0 {
			unix.Close(r.dir)
		}
	}()
	if err := r.enter(name); err != nil {
		return err
	}
	for len(r.levels) > 0 {
		l := &r.levels[len(r.levels)-1]
		if n := len(l.subdirs); n > 0 {
			sub := l.subdirs[n-1]
			l.subdirs = l.subdirs[:n-1]
			err = r.enter(sub)
		} else {
			err = r.leave()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// treeRemover removes a directory tree depth first (see removeAt).
type treeRemover struct {
	top    int // the directory that holds the tree; the caller's
	dir    int // the directory being emptied; -1 at the top
	levels []treeLevel
	buf    []byte // for getdents
}

// treeLevel is a directory on the way down.
type treeLevel struct {
	name    string   // in its parent
	parent  fileID   // which ".." must lead back to
	subdirs []string // still to remove
}

type fileID struct{ dev, ino uint64 }

func identify(fd int) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fileID{}, err
	}
	return fileID{st.Dev, st.Ino}, nil
}

func (r *treeRemover) fd() int {
	if r.dir < 0 {
		return r.top
	}
	return r.dir
}

// moveTo makes fd, or the top when fd is -1, the directory being emptied.
func (r *treeRemover) moveTo(fd int) {
	if r.dir >= 0 {
		unix.Close(r.dir)
	}
	r.dir = fd
}

// enter goes down into the subdirectory name and removes everything in it
// but its own subdirectories, which it notes.
func (r *treeRemover) enter(name string) error {
	parent, err := identify(r.fd())
	if err != nil {
		return err
	}
	fd, err := unix.Openat(r.fd(), name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	r.moveTo(fd)
	var names []string
	for {
		n, err := unix.Getdents(fd, r.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(r.buf[:n], -1, names) // without . and ..
	}
	var subdirs []string
	for _, n := range names {
		switch err := unix.Unlinkat(fd, n, 0); {
		case errors.Is(err, unix.EISDIR):
			subdirs = append(subdirs, n)
		case err != nil && !errors.Is(err, unix.ENOENT):
			return err
		}
	}
	r.levels = append(r.levels, treeLevel{name: name, parent: parent, subdirs: subdirs})
	return nil
}

// leave goes up from the emptied directory and removes it.
func (r *treeRemover) leave() error {
	l := r.levels[len(r.levels)-1]
	r.levels = r.levels[:len(r.levels)-1]
	up := -1 // back at the top
	if len(r.levels) > 0 {
		fd, err := unix.Openat(r.fd(), "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		if id, err := identify(fd); err != nil || id != l.parent {
			unix.Close(fd)
			return fmt.Errorf("directory %q moved while it was removed", l.name)
		}
		up = fd
	}
	r.moveTo(up)
	return unix.Unlinkat(r.fd(), l.name, unix.AT_REMOVEDIR)
}
