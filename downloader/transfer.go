package downloader

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"dashboard/model"
)

// Connections per file: the setting's default and range. Files under
// SegmentedMinSize, and servers that do not honour Range, use one.
const (
	DefaultConnections = 8
	MinConnections     = 1
	MaxConnections     = 32
	SegmentedMinSize   = 64 << 20
)

const (
	// defaultWindow bounds the fetched bytes held in memory until SHA-256
	// reaches them.
	defaultWindow = 64 << 20
	// writeSlice is the size of one write(2).
	writeSlice     = bufSize
	maxWait        = 10 * time.Minute
	resolveTimeout = 30 * time.Second
	// maxRestarts bounds how often a file starts over because the server's
	// copy changed within one download.
	maxRestarts = 3
)

// errChanged says the server's copy is not the one the .part holds: the
// file starts over.
var errChanged = errors.New("the server's copy changed")

// errRestart asks for a new attempt from the beginning, the .part emptied.
var errRestart = errors.New("start over")

// transferConfig is what one file's transfer needs.
type transferConfig struct {
	root   *os.Root
	file   fileRef
	src    *source
	sha256 string // from the preset, "" if none
	exact  int64  // the preset's exact byte count, -1 when it gives a rough size

	// fallbackSHA256 is checked against when neither the preset nor the
	// server states a SHA-256: what a verify found the file should be,
	// when this transfer repairs it.
	fallbackSHA256 string

	connections  int
	window       int64
	writeFault   func(off, n int64) error // tests: a write that fails
	stallTimeout time.Duration
	slowAfter    time.Duration
	retryBase    time.Duration
	maxRetries   int
	bufs         *sync.Pool // of *[]byte of bufSize
	meter        *meter
	log          *slog.Logger

	// sized is told the file's size once the server has said it, before
	// the .part takes any space; an error (no room) ends the transfer.
	sized func(size int64) error
	// allocated is told when the .part's space has been taken on disk, and
	// again whenever the state file names more bytes: on a filesystem
	// without fallocate the space is taken as the bytes land.
	allocated func()
}

// meter is what a transfer reports while it runs; the download it belongs
// to reads it for progress frames.
type meter struct {
	done      *atomic.Int64 // bytes on disk, the download's count
	fetched   *atomic.Int64 // bytes over the wire, for the speed
	conns     *atomic.Int32 // requests open now
	verifying *atomic.Bool  // checksumming bytes already written
	mine      atomic.Int64  // this file's share of done
}

func newMeter() *meter {
	return &meter{done: new(atomic.Int64), fetched: new(atomic.Int64), conns: new(atomic.Int32), verifying: new(atomic.Bool)}
}

func (m *meter) addDone(n int64) {
	m.mine.Add(n)
	m.done.Add(n)
}

func (m *meter) setDone(n int64) {
	m.done.Add(n - m.mine.Swap(n))
}

// transfer fetches one file into <final>.part, checks its SHA-256 and
// renames it into place. It owns the .part (locked while it runs), the
// state file beside it, the spans already on disk and the running hash.
type transfer struct {
	cfg    transferConfig
	src    *source
	log    *slog.Logger
	meter  *meter
	part   *partFile
	st     rangeState // what the state file says besides the spans
	done   spans      // on disk
	hash   hash.Hash  // over [0, hashed)
	hashed int64
	saveMu sync.Mutex
}

func newTransfer(cfg transferConfig) *transfer {
	if cfg.window <= 0 {
		cfg.window = defaultWindow
	}
	if cfg.connections <= 0 {
		cfg.connections = DefaultConnections
	}
	if cfg.meter == nil {
		cfg.meter = newMeter()
	}
	if cfg.bufs == nil {
		cfg.bufs = newBufPool()
	}
	if cfg.sized == nil {
		cfg.sized = func(int64) error { return nil }
	}
	if cfg.allocated == nil {
		cfg.allocated = func() {}
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	return &transfer{cfg: cfg, src: cfg.src, log: cfg.log, meter: cfg.meter, hash: sha256.New(), st: rangeState{Size: -1}}
}

func newBufPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}
}

// run brings the file into place, resuming what an earlier run left. It
// returns nil once the verified file is at its final path. A .part that
// holds nothing of use is not left behind; one that does stays, with its
// state, for a retry, unless the checksum failed.
func (t *transfer) run(ctx context.Context) (err error) {
	t.part, err = openPart(t.cfg.root, t.cfg.file.path)
	if err != nil {
		return err
	}
	defer func() {
		if t.part.f == nil {
			return // placed or discarded
		}
		if err != nil && len(t.done) == 0 {
			t.part.discard()
			return
		}
		t.part.close()
	}()
	t.load()

	failures, restarts, best := 0, 0, int64(-1)
	for {
		err := t.attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		if errors.Is(err, errRestart) {
			if restarts++; restarts > maxRestarts {
				return transient("%s: the server's copy kept changing while it was fetched", t.cfg.file.path)
			}
			continue
		}
		var fe *fetchError
		if !errors.As(err, &fe) || !fe.transient {
			return err
		}
		// Only more bytes on disk than ever before is progress: a server
		// that cannot resume and keeps dropping would otherwise be retried
		// forever.
		if have := t.done.bytes(); have > best {
			if best >= 0 {
				failures = 0
			}
			best = have
		}
		failures++
		if failures > t.cfg.maxRetries {
			return transient("%s: gave up after %d attempts: %s", t.cfg.file.path, failures, fe.Error())
		}
		if fe.immediate {
			continue
		}
		wait := t.backoff(failures)
		if fe.retryAfter > 0 {
			wait = min(fe.retryAfter, maxWait)
		}
		t.log.Warn("download retrying", "path", t.cfg.file.path, "attempt", failures, "wait", wait.String(), "err", fe.Error())
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		case <-timer.C:
		}
	}
}

// load takes what the state file says is on disk; a .part without one
// (written before state files existed) holds a prefix of the file.
func (t *transfer) load() {
	st, ok, legacy := t.part.loadState()
	switch {
	case ok:
		t.st, t.done = st, spansFromState(st.Done)
	case legacy > 0:
		t.done = spans{{0, legacy}}
	case !t.part.fresh:
		t.reset()
	}
	t.meter.setDone(t.done.bytes())
}

// reset starts the file over: nothing on disk, nothing hashed. It is the
// one way the .part is emptied.
func (t *transfer) reset() error {
	t.done, t.hashed = nil, 0
	t.hash.Reset()
	t.st = rangeState{Size: -1}
	t.meter.setDone(0)
	return t.part.empty()
}

// discard gives the file up: the .part and its state are removed.
func (t *transfer) discard() {
	t.done, t.hashed = nil, 0
	t.meter.setDone(0)
	if err := t.part.discard(); err != nil {
		t.log.Warn("remove partial file failed", "path", t.part.name(), "err", err)
	}
}

// saveState syncs the .part and then writes the state naming snap. A
// failure is logged and returned; while the download runs it is not fatal
// (a resume just has less to start from).
func (t *transfer) saveState(snap spans) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	if err := t.part.f.Sync(); err != nil {
		t.log.Warn("sync partial file failed", "path", t.part.name(), "err", err)
		return diskError("sync "+t.part.name(), err)
	}
	st := t.st
	st.Done = spansToState(snap)
	if err := t.part.saveState(st); err != nil {
		t.log.Warn("save download state failed", "path", t.part.name(), "err", err)
		return err
	}
	if len(snap) > 0 {
		t.cfg.allocated()
	}
	return nil
}

// attempt asks for the missing bytes and fetches them: the probe says
// whether the server honours ranges, the file's size and version; then
// the pipe fetches and hashes.
func (t *transfer) attempt(ctx context.Context) error {
	from := t.done.firstGap()
	pctx, pcancel := context.WithCancelCause(ctx)
	watchdog := time.AfterFunc(t.cfg.stallTimeout, func() { pcancel(errStalled) })
	// The probe asks for one piece: its answer says whether the server
	// honours ranges, the file's size and version, and its bytes are the
	// first piece. An open request would make the server push bytes that
	// are thrown away when the answer is closed early.
	resp, meta, err := t.src.probe(pctx, from, from+pieceSize(t.cfg.window, t.cfg.connections)-1)
	watchdog.Stop()
	if err != nil {
		cause := context.Cause(pctx) // before the cancel below sets one
		pcancel(nil)
		return transportError(t.cfg.file, cause, err, t.cfg.stallTimeout)
	}
	keep := false
	defer func() {
		if !keep {
			resp.Body.Close()
			pcancel(nil)
		}
	}()

	total, ranged, onDisk := int64(-1), false, false
	switch resp.StatusCode {
	case http.StatusPartialContent:
		start, _, tot, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != from {
			return t.restart("the server sent an unexpected range")
		}
		if tot < 0 {
			return permanent(model.CodeHTTP, "%s: the server did not say how large the file is (Content-Range %q)",
				t.cfg.file.path, resp.Header.Get("Content-Range"))
		}
		total, ranged = tot, true
	case http.StatusOK:
		total = resp.ContentLength
		if len(t.done) > 0 {
			// The server ignores ranges (or its copy changed): what it
			// sends is the whole file, so that is where to start.
			t.log.Info("download restarting file", "path", t.cfg.file.path, "had_bytes", t.done.bytes(), "reason", "the server sent the whole file")
			if err := t.reset(); err != nil {
				return err
			}
			from = 0 // the answer's bytes are the file's first ones
		}
	case http.StatusRequestedRangeNotSatisfiable:
		_, _, tot, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || from == 0 || tot != from {
			return t.restart("the partial file does not fit the server's copy")
		}
		total, ranged, onDisk = tot, true, true // every byte is on disk: only the check is left
	default:
		return t.src.refusal(resp)
	}

	validator := meta.validator()
	expected := t.cfg.sha256
	if expected == "" {
		expected = meta.sha256()
	}
	if expected == "" {
		expected = t.cfg.fallbackSHA256
	}
	if len(t.done) > 0 {
		switch {
		case t.st.Validator != "" && validator != t.st.Validator,
			t.st.SHA256 != "" && expected != "" && t.st.SHA256 != expected,
			t.st.Size >= 0 && total >= 0 && total != t.st.Size:
			return t.restart("the server's copy changed")
		case t.st.Validator == "" && expected == "":
			// Nothing to check the joined result against: only a fresh
			// copy can be trusted.
			return t.restart("nothing can verify the partial file")
		}
	}
	if t.cfg.exact >= 0 && total >= 0 && total != t.cfg.exact {
		// The preset names an exact size: a file of another size would land
		// but never count as installed, and be fetched again on every Install.
		t.discard()
		return t.sizeMismatch(total)
	}
	t.st = rangeState{Size: total, Validator: validator, SHA256: expected}
	if total >= 0 {
		if err := t.cfg.sized(total); err != nil {
			return err
		}
	}
	if t.part.fresh {
		// The state comes before the space: a crash in between leaves a
		// state that claims nothing, never a full-size .part without one
		// (which would pass for a complete old-style .part).
		if err := t.saveState(nil); err != nil {
			return err
		}
		if err := t.part.preallocate(total); err != nil {
			return err
		}
		t.part.fresh = false
		t.cfg.allocated()
	}

	conns := 1
	if ranged && total >= SegmentedMinSize {
		conns = t.cfg.connections
	}
	p := newPipe(ctx, t, total, !ranged, conns, meta.ifRange())
	var first *http.Response
	// A resume's probe only checked the file when its bytes lie past what
	// the rehash will reach soon; range requests fetch them later.
	if !onDisk && from < t.hashed+t.cfg.window {
		first, keep = resp, true
	}
	if err := p.run(first, pcancel); err != nil {
		if errors.Is(err, errChanged) {
			return t.restart("the server's copy changed while it was fetched")
		}
		return err
	}
	return t.finish(expected)
}

// restart empties the .part and asks for a new attempt at once.
func (t *transfer) restart(why string) error {
	t.log.Info("download restarting file", "path", t.cfg.file.path, "had_bytes", t.done.bytes(), "reason", why)
	if err := t.reset(); err != nil {
		return err
	}
	return errRestart
}

func (t *transfer) sizeMismatch(size int64) error {
	return permanent(model.CodeSizeMismatch,
		"%s: the server's file is %d bytes but the preset says %d; the preset may be out of date", t.cfg.file.path, size, t.cfg.exact)
}

// finish checks the hashed file and renames it into place.
func (t *transfer) finish(expected string) error {
	if t.cfg.exact >= 0 && t.hashed != t.cfg.exact { // the server sent no length up front
		t.discard()
		return t.sizeMismatch(t.hashed)
	}
	got := hex.EncodeToString(t.hash.Sum(nil))
	if expected != "" && got != expected {
		t.discard()
		return permanent(model.CodeChecksum,
			"%s: checksum mismatch (expected sha256 %s, got %s); the partial file was deleted", t.cfg.file.path, expected, got)
	}
	if expected == "" {
		t.log.Info("download unverified", "path", t.cfg.file.path, "reason", "no sha256 in the preset or the server's headers")
	}
	began := time.Now()
	if err := t.part.f.Sync(); err != nil {
		return diskError("sync "+t.part.name(), err)
	}
	t.log.Debug("download file synced", "path", t.cfg.file.path, "sync_seconds", time.Since(began).Seconds())
	if err := t.part.place(); err != nil {
		return err
	}
	t.part.close()
	return nil
}

// backoff doubles from retryBase with jitter, so many pods hitting one
// mirror do not retry in step.
func (t *transfer) backoff(failures int) time.Duration {
	d := t.cfg.retryBase << min(failures-1, 16)
	if d <= 0 || d > maxWait {
		d = maxWait
	}
	return d/2 + rand.N(d/2+1)
}
