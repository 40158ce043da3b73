package downloader

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"dashboard/model"
)

// Every file the downloader creates, renames or removes lives under the
// models folder and is reached through an os.Root opened on it, so a
// symbolic link inside the folder that points out of it (models/loras ->
// /elsewhere) is refused instead of followed.

const (
	partSuffix  = ".part"
	stateSuffix = ".part.state" // the resume state beside <final>.part
	stateTmp    = ".part.state.tmp"
)

// partFile is an open, locked <final>.part. While it is open no other
// process (and no other open in this one) can lock it: a second writer is
// refused instead of interleaving its bytes with ours. The lock covers the
// state file too, which only the lock's holder writes.
type partFile struct {
	root  *os.Root
	rel   string // the final path, slash-separated, relative to root
	f     *os.File
	fresh bool // created by this open, or emptied since: nothing of it is trusted
}

// openPart creates the file's folder and opens and locks its .part.
func openPart(root *os.Root, rel string) (*partFile, error) {
	return openPartTries(root, rel, 3)
}

func openPartTries(root *os.Root, rel string, retries int) (*partFile, error) {
	if dir := path.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return nil, rootError(root, "create the folder of "+rel, rel, err)
		}
	}
	name := rel + partSuffix
	fresh := false
	f, err := root.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		fresh = err == nil
		if errors.Is(err, fs.ErrExist) { // another writer made it just now
			f, err = root.OpenFile(name, os.O_RDWR, 0)
		}
	}
	if err != nil {
		return nil, rootError(root, "open "+name, rel, err)
	}
	if beforePartLock != nil {
		beforePartLock(rel)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, permanent(model.CodeDisk,
				"%s is being written by another process (another dashboard on this volume?); stop it or wait for it to finish, then retry", name)
		}
		return nil, diskError("lock "+name, err)
	}
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		f.Close()
		return nil, permanent(model.CodeDisk, "%s is not a regular file; remove it and retry", name)
	}
	if !stillAt(root, name, f) {
		// Another writer renamed the file into place (or removed it)
		// between our open and our lock: what we hold is no .part any
		// more, maybe the installed model. Open the path again.
		f.Close()
		if retries > 0 {
			return openPartTries(root, rel, retries-1)
		}
		return nil, permanent(model.CodeDisk, "%s keeps being replaced by another process (another dashboard on this volume?); stop it, then retry", name)
	}
	return &partFile{root: root, rel: rel, f: f, fresh: fresh}, nil
}

// beforePartLock, when set, runs between a .part's open and its lock:
// tests stand in for another process placing the file meanwhile.
var beforePartLock func(rel string)

// stillAt reports whether name in root is the file f has open.
func stillAt(root *os.Root, name string, f *os.File) bool {
	held, err1 := f.Stat()
	now, err2 := root.Lstat(name)
	return err1 == nil && err2 == nil && os.SameFile(held, now)
}

// close releases the lock.
func (p *partFile) close() {
	if p.f != nil {
		p.f.Close() // closing the descriptor drops the flock
		p.f = nil
	}
}

func (p *partFile) name() string { return p.rel + partSuffix }

// rangeState is what survives a cancel, a crash or a restart: which bytes
// of the .part hold the file, and which version of the file they are from.
type rangeState struct {
	Version   int        `json:"version"`
	Size      int64      `json:"size"`      // the file's size, -1 unknown
	Validator string     `json:"validator"` // X-Linked-Etag, ETag or Last-Modified
	SHA256    string     `json:"sha256"`    // expected, "" when unknown
	Done      [][2]int64 `json:"done"`      // fetched [from, to) spans, sorted
}

const stateVersion = 1

// loadState reads the state file; ok is false when there is none or it
// cannot be trusted, and legacy is the length of a .part written before
// state files existed (append-only: its whole length is a prefix of the file).
func (p *partFile) loadState() (st rangeState, ok bool, legacy int64) {
	b, err := p.root.ReadFile(p.rel + stateSuffix)
	if err != nil {
		if fi, serr := p.f.Stat(); serr == nil && errors.Is(err, fs.ErrNotExist) {
			return rangeState{}, false, fi.Size()
		}
		return rangeState{}, false, 0
	}
	if json.Unmarshal(b, &st) != nil || st.Version != stateVersion {
		return rangeState{}, false, 0
	}
	fi, err := p.f.Stat()
	if err != nil {
		return rangeState{}, false, 0
	}
	prev := int64(0)
	for _, d := range st.Done {
		if d[0] < prev || d[1] <= d[0] || d[1] > fi.Size() || (st.Size >= 0 && d[1] > st.Size) {
			return rangeState{}, false, 0
		}
		prev = d[1]
	}
	return st, true, 0
}

// saveState replaces the state file: a temporary file, synced, renamed
// over it, so a crash leaves the old state or the new one, never half.
// The caller has synced the .part first, so every span it names is on disk.
func (p *partFile) saveState(st rangeState) error {
	st.Version = stateVersion
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := p.rel + stateTmp
	f, err := p.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return rootError(p.root, "write the state of "+p.name(), p.rel, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = p.root.Rename(tmp, p.rel+stateSuffix)
	}
	if err != nil {
		p.root.Remove(tmp)
		return diskError("write the state of "+p.name(), err)
	}
	return nil
}

// empty forgets what the .part holds. The bytes go first: a state left by
// a crash in between names spans past the end of the emptied file, and is
// refused; a full-size .part without its state would be taken for a
// complete old-style one.
func (p *partFile) empty() error {
	if err := p.f.Truncate(0); err != nil {
		return diskError("truncate "+p.name(), err)
	}
	if err := p.root.Remove(p.rel + stateSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return diskError("remove the state of "+p.name(), err)
	}
	p.fresh = true
	return nil
}

// discard removes the .part and then its state (see empty for the order),
// then lets go of the lock.
func (p *partFile) discard() error {
	err1 := p.root.Remove(p.name())
	err2 := p.root.Remove(p.rel + stateSuffix)
	p.close()
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return diskError("remove "+p.name(), err)
		}
	}
	return nil
}

// preallocate gives the .part its full size, with the disk space reserved
// where the filesystem can (fallocate), else as a sparse file.
func (p *partFile) preallocate(size int64) error {
	if size <= 0 {
		return nil
	}
	if err := allocate(p.f, size); err != nil {
		if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
			return diskError("reserve space for "+p.name(), err)
		}
		// Not supported here (some network and FUSE filesystems): a
		// sparse file does, the space is taken as it is written.
		if err := p.f.Truncate(size); err != nil {
			return diskError("size "+p.name(), err)
		}
	}
	return nil
}

// place renames the verified .part to the final path and removes the state.
func (p *partFile) place() error {
	if err := p.root.Rename(p.name(), p.rel); err != nil {
		return rootError(p.root, "rename "+p.name(), p.rel, err)
	}
	if err := p.root.Remove(p.rel + stateSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return diskError("remove the state of "+p.name(), err)
	}
	// Make the rename durable. Some network filesystems refuse to sync a
	// folder; the rename has happened, so that is not an error.
	if d, err := p.root.Open(path.Dir(p.rel)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// removePart deletes a .part and its state unless another writer holds it.
func removePart(root *os.Root, rel string) error {
	p, err := openExisting(root, rel)
	if err != nil || p == nil {
		return err
	}
	return p.discard()
}

// openExisting opens and locks an existing .part; nil, nil when there is none.
func openExisting(root *os.Root, rel string) (*partFile, error) {
	f, err := root.OpenFile(rel+partSuffix, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		// A state without its .part is left over from a crash mid-removal.
		root.Remove(rel + stateSuffix)
		return nil, nil
	}
	if err != nil {
		return nil, rootError(root, "open "+rel+partSuffix, rel, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, permanent(model.CodeDisk, "%s%s is being written by another process", rel, partSuffix)
		}
		return nil, diskError("lock "+rel+partSuffix, err)
	}
	if !stillAt(root, rel+partSuffix, f) {
		// Placed or removed by its writer while we waited for the lock:
		// the file we hold is not the .part any more.
		f.Close()
		return openExisting(root, rel)
	}
	return &partFile{root: root, rel: rel, f: f}, nil
}

var errLocked = errors.New("locked by another writer")

// rootError explains a failed operation under the models folder. os.Root
// refuses a path that leaves it (through a symbolic link) without a
// distinct error value, so the path is checked here to say so plainly.
func rootError(root *os.Root, op, rel string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return diskError(op, err)
	}
	if leaves(root.Name(), rel) {
		return permanent(model.CodeDisk,
			"%s: the path leads outside the models folder through a symbolic link; downloads only write inside %s", rel, root.Name())
	}
	return diskError(op, err)
}

// leaves says whether rel, with its symbolic links followed as far as it
// exists, ends up outside dir.
func leaves(dir, rel string) bool {
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	p := filepath.Join(dir, filepath.FromSlash(rel))
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			r, err := filepath.Rel(base, real)
			return err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator))
		}
		parent := filepath.Dir(p)
		if parent == p || !strings.HasPrefix(parent, dir) {
			return false
		}
		p = parent
	}
}

func diskError(op string, err error) *fetchError {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return permanent(model.CodeDiskSpace, "%s: the volume is full", op)
	case errors.Is(err, syscall.EDQUOT): // a network volume's quota, often before it is full
		return permanent(model.CodeDiskSpace, "%s: the volume is full (its quota is used up)", op)
	}
	return permanent(model.CodeDisk, "%s: %v", op, unwrapPathErr(err))
}

// spansToState and spansFromState convert between spans and the state file's form.
func spansToState(s spans) [][2]int64 {
	out := make([][2]int64, len(s))
	for i, x := range s {
		out[i] = [2]int64{x.from, x.to}
	}
	return out
}

func spansFromState(d [][2]int64) spans {
	var s spans
	for _, x := range d {
		s = s.add(span{x[0], x[1]})
	}
	return s
}
