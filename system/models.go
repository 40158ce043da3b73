package system

import (
	"cmp"
	"context"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// slowWalkFactor spaces walks out when they are slow: the next one starts no
// sooner than this many times the last one's duration after it ended, so a
// network filesystem spends at most a tenth of its time answering the walk.
const slowWalkFactor = 10

// readBatch is how many directory entries are read at once: a folder of
// 100,000 files is listed in pieces, never held whole.
const readBatch = 256

// counter keeps the models folder's sizes: a walk at most every WalkEvery,
// when asked, and the downloader's news in between.
type counter struct {
	dir   string
	every time.Duration
	now   func() time.Time
	log   *slog.Logger
	req   chan struct{} // a walk is wanted; never blocks
	// walked is signalled (without blocking) after each walk, so a frame
	// can show the new counts at once.
	walked chan struct{}

	// counted is closed when the first walk has finished.
	counted     chan struct{}
	countedOnce sync.Once

	mu        sync.Mutex
	folders   map[string]Folder
	parts     int64 // bytes in .part files at the last walk
	countedAt *time.Time
	walking   bool
	pending   []delta // news that came during the walk under way
	failing   bool    // the last walk failed (logged once)
}

type delta struct {
	folder       string
	bytes, files int64
}

func newCounter(dir string, every time.Duration, now func() time.Time, log *slog.Logger) *counter {
	return &counter{
		dir: dir, every: every, now: now, log: log,
		req:     make(chan struct{}, 1),
		walked:  make(chan struct{}, 1),
		counted: make(chan struct{}),
		folders: map[string]Folder{},
	}
}

// request asks for a walk; it is done when the last one is old enough.
func (c *counter) request() {
	select {
	case c.req <- struct{}{}:
	default:
	}
}

// run walks the folder when asked and due, until ctx is done. A request
// that comes too early is dropped: the counts are recent enough, and the
// frames ask again every few seconds while anyone watches.
func (c *counter) run(ctx context.Context) {
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.req:
		}
		if c.now().Before(next) {
			continue
		}
		start := c.now()
		c.walk(ctx)
		if ctx.Err() != nil {
			return
		}
		took := c.now().Sub(start)
		next = c.now().Add(max(c.every, slowWalkFactor*took))
		c.log.Debug("models counted", "path", c.dir, "seconds", took.Seconds())
	}
}

// walk counts the folder and replaces the counts with what it found, plus
// the news that came meanwhile (a file landing in a folder already walked
// would otherwise be missed until the next walk; one in a folder not yet
// walked is counted twice until then).
func (c *counter) walk(ctx context.Context) {
	c.mu.Lock()
	c.walking, c.pending = true, nil
	c.mu.Unlock()

	folders, parts, err := walkModels(ctx, c.dir)

	c.mu.Lock()
	defer c.mu.Unlock()
	c.walking = false
	pending := c.pending
	c.pending = nil
	if err != nil {
		if ctx.Err() == nil && !c.failing {
			c.log.Warn("models folder could not be counted", "path", c.dir, "err", err)
			c.failing = true
		}
		return
	}
	if c.failing {
		c.log.Info("models folder counted again", "path", c.dir)
		c.failing = false
	}
	c.folders, c.parts = folders, parts
	for _, d := range pending {
		c.applyLocked(d)
	}
	at := c.now().UTC()
	c.countedAt = &at
	c.countedOnce.Do(func() { close(c.counted) })
	select {
	case c.walked <- struct{}{}:
	default:
	}
}

// isCounted tells whether the first walk has ended.
func (c *counter) isCounted() bool {
	select {
	case <-c.counted:
		return true
	default:
		return false
	}
}

// add records a file landing (files 1) or going (files -1) at relPath.
func (c *counter) add(relPath string, bytes, files int64) {
	folder, ok := topFolder(relPath)
	if !ok {
		return
	}
	d := delta{folder: folder, bytes: bytes, files: files}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.applyLocked(d)
	if c.walking {
		c.pending = append(c.pending, d)
	}
}

func (c *counter) applyLocked(d delta) {
	f := c.folders[d.folder]
	f.Name = d.folder
	f.Bytes = max(0, f.Bytes+d.bytes)
	f.Files = max(0, f.Files+d.files)
	c.folders[d.folder] = f
}

// topFolder is the first element of a path relative to the models folder,
// "." for a file lying in it; false for a path that leaves it.
func topFolder(relPath string) (string, bool) {
	p := path.Clean(filepath.ToSlash(relPath))
	if p == "." || p == ".." || strings.HasPrefix(p, "../") || path.IsAbs(p) {
		return "", false
	}
	first, _, found := strings.Cut(p, "/")
	if !found {
		return ".", true
	}
	return first, true
}

func (c *counter) partBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.parts
}

// snapshot is the counts now, largest folder first; empty folders are left out.
func (c *counter) snapshot() Models {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := Models{Folders: make([]Folder, 0, len(c.folders))}
	for _, f := range c.folders {
		if f.Files == 0 && f.Bytes == 0 {
			continue
		}
		m.Folders = append(m.Folders, f)
		m.Bytes += f.Bytes
		m.Files += f.Files
	}
	slices.SortFunc(m.Folders, func(a, b Folder) int {
		if a.Bytes != b.Bytes {
			return cmp.Compare(b.Bytes, a.Bytes)
		}
		return cmp.Compare(a.Name, b.Name)
	})
	if c.countedAt != nil {
		at := *c.countedAt
		m.CountedAt = &at
	}
	return m
}

// isPart reports whether name is a download in progress (or its state kept
// beside it): space in use, but not a model yet.
func isPart(name string) bool {
	return strings.HasSuffix(name, ".part") || strings.Contains(name, ".part.")
}

// walkModels counts the regular files under dir by top-level folder, and
// the bytes of downloads in progress. One directory is read at a time, in
// batches, by one goroutine: a single outstanding request to a network
// filesystem, and each file's size asked relative to its open directory, not
// by a path resolved again from the root. Symbolic links are not followed.
// A folder that cannot be read is skipped; only dir itself failing is an
// error.
func walkModels(ctx context.Context, dir string) (map[string]Folder, int64, error) {
	folders := map[string]Folder{}
	var parts int64
	stack := []string{"."}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		rel := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		f, err := os.Open(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			if rel == "." {
				return nil, 0, err
			}
			continue
		}
		top, _, _ := strings.Cut(rel, "/") // "." for files lying in dir
		count := folders[top]
		count.Name = top
		for {
			ents, err := f.ReadDir(readBatch)
			for _, e := range ents {
				switch {
				case e.IsDir():
					if rel == "." {
						stack = append(stack, e.Name())
					} else {
						stack = append(stack, rel+"/"+e.Name())
					}
				case e.Type().IsRegular():
					size, ok := fileSize(f, e)
					switch {
					case !ok: // gone since it was listed
					case isPart(e.Name()):
						parts += size
					default:
						count.Bytes += size
						count.Files++
					}
				}
			}
			if err != nil || len(ents) == 0 {
				break // io.EOF at the end; another error ends this folder early
			}
		}
		f.Close()
		if count.Files > 0 || count.Bytes > 0 {
			folders[top] = count
		}
	}
	return folders, parts, nil
}
