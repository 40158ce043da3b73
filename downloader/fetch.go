package downloader

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"dashboard/model"
)

// fetchError is a download failure: what the user is told (a model.Error)
// and whether retrying may mend it.
type fetchError struct {
	err        *model.Error
	transient  bool
	retryAfter time.Duration
	immediate  bool // retry at once, without waiting
}

func (e *fetchError) Error() string { return e.err.Message }

func (e *fetchError) Unwrap() error { return e.err }

// permanent is a failure retrying will not mend.
func permanent(code model.Code, format string, args ...any) *fetchError {
	return &fetchError{err: model.Errorf(code, format, args...)}
}

// transient is a network failure worth retrying.
func transient(format string, args ...any) *fetchError {
	return &fetchError{err: model.Errorf(model.CodeNetwork, format, args...), transient: true}
}

func toDownloadError(err error) *model.Error {
	if e := model.AsError(err); e != nil {
		return &model.Error{Code: e.Code, Message: e.Message}
	}
	return &model.Error{Code: model.CodeNetwork, Message: err.Error()}
}

// pathLocks makes sure one file is fetched by one download at a time, so
// presets sharing a path install it once.
type pathLocks struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newPathLocks() *pathLocks { return &pathLocks{m: map[string]chan struct{}{}} }

func (p *pathLocks) ch(path string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.m[path]
	if !ok {
		c = make(chan struct{}, 1)
		p.m[path] = c
	}
	return c
}

func (p *pathLocks) lock(ctx context.Context, path string) (func(), error) {
	c := p.ch(path)
	select {
	case c <- struct{}{}:
		return func() { <-c }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pathLocks) tryLock(path string) (func(), bool) {
	c := p.ch(path)
	select {
	case c <- struct{}{}:
		return func() { <-c }, true
	default:
		return nil, false
	}
}

// spaceBook holds, for every running download, the disk space it still has
// to take: the free-space check of one download counts what the others
// have set aside, so two downloads cannot both pass it for the same bytes.
type spaceBook struct {
	mu   sync.Mutex
	dir  string
	free func(dir string) (uint64, error)
	log  *slog.Logger
	held map[int64]int64 // download id → bytes
	gen  uint64          // raised by every change of held
}

// reserve sets the space download id still needs. Asking for more than it
// held is checked against the free space less what the others hold; when
// the free space cannot be read the download goes ahead (a full disk is
// still caught on write).
func (b *spaceBook) reserve(id, need int64) error {
	// The free space is read without the book locked: on a slow network
	// filesystem statfs can take long, and other downloads' bookings and
	// releases must not wait for it. A booking that shrank or went while it
	// was read (its bytes on disk now, so in neither figure) makes the
	// reading stale: it is read again, and after a few tries under the lock.
	var free uint64
	var err error
	b.mu.Lock()
	asking := need > b.held[id]
	for try := 0; asking; try++ {
		if try == 3 {
			free, err = b.free(b.dir)
			break
		}
		gen := b.gen
		b.mu.Unlock()
		free, err = b.free(b.dir)
		b.mu.Lock()
		if b.gen == gen {
			break
		}
	}
	defer b.mu.Unlock()
	if asking {
		if err != nil {
			b.log.Warn("free space unknown", "path", b.dir, "err", err)
		} else {
			var others int64
			for k, v := range b.held {
				if k != id {
					others += v
				}
			}
			avail := max(int64(min(free, 1<<62))-others, 0)
			if need > avail {
				aside := ""
				if others > 0 {
					aside = fmt.Sprintf(" (%s more is set aside for other running downloads)", humanBytes(others))
				}
				return permanent(model.CodeDiskSpace, "not enough disk space: %s more is needed but only %s is free in %s%s",
					humanBytes(need), humanBytes(avail), b.dir, aside)
			}
		}
	}
	if b.held[id] != need {
		b.held[id] = need
		b.gen++
	}
	return nil
}

func (b *spaceBook) release(id int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.held, id)
	b.gen++
}

func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// fetchPreset fetches the preset's files that are not in place, in order.
func (m *Manager) fetchPreset(ctx context.Context, d *download) error {
	var todo []PresetFile
	var total int64
	for _, f := range d.preset.Files {
		if m.installed(f) {
			continue
		}
		todo = append(todo, f)
		total += f.SizeBytes
	}
	d.bytesTotal.Store(total)
	m.mu.Lock()
	d.filesCompleted = d.filesTotal - len(todo)
	m.mu.Unlock()
	if len(todo) == 0 {
		return nil
	}
	if err := os.MkdirAll(m.cfg.ModelsDir, 0o755); err != nil {
		return diskError("create the models folder", err)
	}
	root, err := os.OpenRoot(m.cfg.ModelsDir)
	if err != nil {
		return diskError("open the models folder", err)
	}
	defer root.Close()
	defer m.space.release(d.id)
	if err := m.reserveSpace(root, d.id, todo, -1); err != nil {
		return err
	}
	for i, f := range todo {
		m.mu.Lock()
		d.currentFile = f.Path
		m.mu.Unlock()
		// A corrupt file stays in place until its verified copy is
		// renamed over it.
		before, _ := root.Stat(f.Path)
		if err := m.fetchFile(ctx, root, d, f, todo[i:]); err != nil {
			return err
		}
		m.mu.Lock()
		d.filesCompleted++
		m.mu.Unlock()
		m.reserveSpace(root, d.id, todo[i+1:], -1) // less than before: cannot fail
		m.repaired(ctx, f.Path, before)
		m.landed(f)
		m.publishPresets() // the file is installed, for every preset that lists it
	}
	return nil
}

// reserveSpace books the space a download still needs: for every file not
// yet in place, its size less what its .part already takes on disk. size,
// when not -1, is the real size of files[0] as the server gave it.
func (m *Manager) reserveSpace(root *os.Root, id int64, files []PresetFile, size int64) error {
	var need int64
	for i, f := range files {
		n := f.SizeBytes
		if i == 0 && size >= 0 {
			n = size
		}
		if fi, err := root.Stat(f.Path + partSuffix); err == nil {
			n -= allocatedBytes(fi)
		}
		need += max(n, 0)
	}
	return m.space.reserve(id, need)
}

// fetchFile brings one file into place through a transfer.
func (m *Manager) fetchFile(ctx context.Context, root *os.Root, d *download, f PresetFile, rest []PresetFile) error {
	unlock, err := m.paths.lock(ctx, f.Path)
	if err != nil {
		return err
	}
	defer unlock()
	if m.installed(f) { // another preset sharing this path fetched it meanwhile
		d.bytesTotal.Add(-f.SizeBytes)
		return nil
	}
	u, svc, err := m.services.rewrite(f.URL)
	if err != nil {
		return permanent(model.CodeNotFound, "%s: %v", f.Path, err)
	}
	ref := fileRef{path: f.Path, url: f.URL}
	exact := int64(-1)
	if f.exact {
		exact = f.SizeBytes
	}
	counted := f.SizeBytes // what bytes_total holds for this file
	if f.sha256 == "" && svc == m.civitai {
		// Civitai's API could not answer when the preset was queued; ask again.
		f.sha256 = m.withCivitaiFile(ctx, f).sha256
	}
	t := newTransfer(transferConfig{
		root:         root,
		file:         ref,
		src:          newSource(svc, u, ref, m.headCli, m.client),
		sha256:       f.sha256,
		exact:        exact,
		connections:  m.cfg.Connections,
		window:       m.cfg.window,
		writeFault:   m.cfg.writeFault,
		stallTimeout: m.cfg.StallTimeout,
		slowAfter:    m.cfg.SlowAfter,
		retryBase:    m.cfg.RetryBase,
		maxRetries:   m.cfg.MaxRetries,
		bufs:         m.bufs,
		meter:        &meter{done: &d.bytesDone, fetched: &d.fetched, conns: &d.conns, verifying: &d.verifying},
		log:          m.log.With("download_id", d.id),
		sized: func(size int64) error {
			d.bytesTotal.Add(size - counted)
			counted = size
			return m.reserveSpace(root, d.id, rest, size)
		},
		allocated: func() { m.reserveSpace(root, d.id, rest, counted) },
	})
	// Repairing a corrupt file: when neither the preset nor the server
	// states a SHA-256, the new copy must match the one the verify used.
	t.cfg.fallbackSHA256 = m.corruptExpected(f.Path)
	return t.run(ctx)
}
