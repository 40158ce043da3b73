// Package lease decides which of the dashboards sharing a workspace volume
// writes to it. Pods on different machines can mount one network volume at
// once, and nothing they share (not page caches, not locks: FUSE and many
// network filesystems keep both per machine) stops two of them from writing
// the same SQLite file into corruption. So one dashboard holds the volume's
// writer lease and the others only read until it goes away.
//
// The lease is a small file, $WORKSPACE/data/dashboard.lease, naming the
// holder's node and carrying a counter the holder raises every Renew. It is
// always replaced whole (a temporary file renamed over it), so a reader
// never sees half of one. Nobody compares clocks across machines: a reader
// decides the holder is gone when the file has not changed for Stale by
// its own clock. Taking the lease over is claim, wait, re-read: the claimer
// writes itself in, waits Settle (longer than any client's cache of the
// file), and has the lease only if the file still names it; when several
// claim at once the last rename wins for all of them, so exactly one does.
// A holder reads the file before each renewal and stops writing the moment
// it names someone else (it was paused past Stale, say).
//
// The common case, a container restart, must not wait out Stale. The
// holder keeps an OS lock (flock) on a lock file beside the lease, which
// dies with its process. A dashboard that finds its own node named in the
// lease and can take that lock knows no holder is alive on this machine,
// and claims at once.
package lease

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"dashboard/model"
)

// Defaults of Config's durations. Stale and Renew are the contract's: a
// reader takes over within a minute of the writer's last renewal.
const (
	DefaultRenew  = 5 * time.Second
	DefaultStale  = 30 * time.Second
	DefaultSettle = 2 * time.Second
)

// Config configures a Lease. Zero durations take the defaults.
type Config struct {
	Path   string // the lease file; its lock file is Path + ".lock"
	Node   string // this dashboard's node name
	Renew  time.Duration
	Stale  time.Duration // a lease unchanged this long is free
	Settle time.Duration // the wait between claiming and re-reading
	// Now measures time passing on this machine only; nil → time.Now.
	Now func() time.Time
	// Sleep waits d or until ctx is done; nil → a timer.
	Sleep  func(ctx context.Context, d time.Duration) error
	Logger *slog.Logger
}

// State is what this dashboard knows about the lease.
type State struct {
	Writer bool
	// Holder is the writer's node name: this node's when Writer, else
	// the node the lease file names, "" when it names none.
	Holder string
}

// record is the lease file's content.
type record struct {
	Node string `json:"node"`
	// Holder tells one run of a dashboard from the next: two processes
	// on one node (a restart, a test) share the node name.
	Holder  string `json:"holder"`
	Counter uint64 `json:"counter"`
}

// Lease is one dashboard's view of, and hold on, the writer lease. Acquire
// it once, then Run it; Check before writing; Release after the last write.
type Lease struct {
	cfg Config
	log *slog.Logger
	id  string

	// stepMu makes each look at the file (Run's, Check's) one step.
	stepMu sync.Mutex
	// Only the goroutine holding stepMu touches these.
	seen     []byte    // the file as last read by a reader
	seenAt   time.Time // when seen last changed
	counter  uint64    // the counter last written as holder
	renewed  time.Time // last successful renewal
	lockFile *os.File  // the flock, held while writer
	lastErr  string    // the last trouble with the file, logged once

	mu        sync.Mutex
	state     State
	confirmed time.Time // when the file was last seen to name us

	changes chan State
}

// New returns a Lease for cfg; it holds nothing until Acquire.
func New(cfg Config) (*Lease, error) {
	if cfg.Path == "" || cfg.Node == "" {
		return nil, errors.New("lease: path and node name are required")
	}
	if cfg.Renew <= 0 {
		cfg.Renew = DefaultRenew
	}
	if cfg.Stale <= 0 {
		cfg.Stale = DefaultStale
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = sleep
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return &Lease{cfg: cfg, log: cfg.Logger, id: hex.EncodeToString(b[:]), changes: make(chan State, 1)}, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Acquire takes the lease when it is free (no lease, or this node's
// previous dashboard is gone), waiting at most Settle, and otherwise
// starts watching it. It reports the state this dashboard starts in.
func (l *Lease) Acquire(ctx context.Context) (State, error) {
	l.step(ctx)
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	return l.State(), nil
}

// Run renews the lease while this dashboard holds it and watches it while
// another does, taking it over when it goes stale, until ctx is done. Every
// change of state is sent on Changes. It does not release the lease: call
// Release once nothing writes any more.
func (l *Lease) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Renew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			l.step(ctx)
		}
	}
}

// Changes delivers the state each time it changes; a receiver that falls
// behind gets the latest.
func (l *Lease) Changes() <-chan State { return l.changes }

// State is what this dashboard knows now.
func (l *Lease) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Check says whether this dashboard may write: nil while it holds the
// lease, else the read_only error naming the writer. A holder that has not
// seen the file name it for two renewals (the process was paused, the disk
// hung) reads it first, so a lease taken meanwhile stops the write.
func (l *Lease) Check(ctx context.Context) error {
	l.mu.Lock()
	st, fresh := l.state, l.cfg.Now().Sub(l.confirmed) < 2*l.cfg.Renew
	l.mu.Unlock()
	if st.Writer && !fresh {
		l.stepMu.Lock()
		if l.State().Writer {
			l.renew(ctx)
		}
		l.stepMu.Unlock()
		st = l.State()
	}
	if !st.Writer {
		return model.ReadOnlyError(st.Holder)
	}
	return nil
}

// Release gives the lease up: the file is removed if it still names this
// dashboard, so a reader takes over at its next look instead of after
// Stale. Call it after the last write, at shutdown.
func (l *Lease) Release() {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	if l.State().Writer {
		if rec, _, err := l.read(); err == nil && rec.Holder == l.id {
			if err := os.Remove(l.cfg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				l.log.Warn("could not remove the writer lease; another dashboard takes over once it goes stale", "path", l.cfg.Path, "error", err)
			} else {
				l.log.Info("writer lease released", "path", l.cfg.Path)
			}
		}
	}
	l.unlock()
	l.set(State{Holder: ""}, false)
}

// step is one look at the file: a renewal while writer, a watch otherwise.
func (l *Lease) step(ctx context.Context) {
	l.stepMu.Lock()
	defer l.stepMu.Unlock()
	if l.State().Writer {
		l.renew(ctx)
	} else {
		l.watch(ctx)
	}
}

// watch reads the lease as a reader and claims it when it is free.
func (l *Lease) watch(ctx context.Context) {
	rec, raw, err := l.read()
	now := l.cfg.Now()
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Nobody holds it: a new volume, or the writer stopped cleanly.
		l.create(ctx)
		return
	case err != nil:
		l.warnOnce("could not read the writer lease; staying read-only", err)
		return
	case rec.Holder == l.id:
		// Ours from before we stepped down (renewals failed), and nobody
		// has taken it since.
		l.claim(ctx, rec, raw, "this dashboard's own lease")
		return
	case rec.Node == l.cfg.Node && l.lock():
		// This node's, and no process here holds the lock: the dashboard
		// that held it is gone (a restart, a crash).
		l.claim(ctx, rec, raw, "this node's previous dashboard is gone")
		return
	}
	if !bytes.Equal(raw, l.seen) {
		l.seen, l.seenAt = raw, now
		l.set(State{Holder: rec.Node}, false)
		return
	}
	if now.Sub(l.seenAt) >= l.cfg.Stale {
		l.claim(ctx, rec, raw, fmt.Sprintf("the lease of %q has not been renewed for %s", rec.Node, now.Sub(l.seenAt).Round(time.Second)))
	}
}

// create takes a lease that does not exist. Creating the file succeeds for
// one dashboard only (a hard link, like O_EXCL, fails when the name
// exists), so there is nothing to wait for.
func (l *Lease) create(ctx context.Context) {
	l.lock()
	mine := record{Node: l.cfg.Node, Holder: l.id, Counter: 1}
	ok, err := l.writeNew(mine)
	if err != nil {
		l.warnOnce("could not create the writer lease; staying read-only", err)
		l.unlock()
		return
	}
	if !ok {
		// Another dashboard created it first; it is watched from the next step.
		l.unlock()
		l.log.Info("another dashboard took the writer lease first", "path", l.cfg.Path)
		return
	}
	l.won(mine, "there was no lease")
}

// beforeClaimRename, when set, runs just before a claim's rename: tests
// stand in for a rename that a slow filesystem holds up.
var beforeClaimRename func(*Lease)

// claim writes this dashboard into the lease over prev (prevRaw as read),
// waits Settle and reads it back: only a claim that survives the wait wins.
//
// The slow part of the write (the synced temporary file) comes first, and
// the lease is read again just before the rename: a claim is only made over
// the very lease that was found free. Another dashboard's claim that landed
// meanwhile ends this one, so a late claim does not replace a claim that
// has already won (its holder would write on until its next renewal). Two
// claims whose renames are that close both wait Settle and then see the
// last one, so exactly one wins. A rename slower than Settle/2 could still
// land after another claimer has won; such a claim waits two renewals
// more before it reads the lease back, by when that one has stepped down.
func (l *Lease) claim(ctx context.Context, prev record, prevRaw []byte, why string) {
	l.lock()
	mine := record{Node: l.cfg.Node, Holder: l.id, Counter: prev.Counter + 1}
	tmp, err := l.temp(mine)
	var took time.Duration
	if err == nil {
		cur, curRaw, rerr := l.read()
		if rerr != nil || !bytes.Equal(curRaw, prevRaw) {
			os.Remove(tmp)
			l.unlock()
			l.seen, l.seenAt = curRaw, l.cfg.Now()
			if rerr != nil {
				// Gone (its holder stopped cleanly) or unreadable: the
				// next step looks again.
				l.log.Info("the writer lease changed while it was claimed; looking again", "path", l.cfg.Path, "error", rerr)
			} else {
				l.log.Info("another dashboard claimed the writer lease first", "path", l.cfg.Path, "writer", cur.Node)
			}
			l.set(State{Holder: cur.Node}, false)
			return
		}
		began := l.cfg.Now()
		if beforeClaimRename != nil {
			beforeClaimRename(l)
		}
		if err = os.Rename(tmp, l.cfg.Path); err != nil {
			os.Remove(tmp)
			err = fmt.Errorf("replace lease: %w", err)
		}
		took = l.cfg.Now().Sub(began)
	}
	if err != nil {
		l.warnOnce("could not claim the writer lease; staying read-only", err)
		l.unlock()
		return
	}
	wait := l.cfg.Settle
	if took > l.cfg.Settle/2 {
		// A slow rename may have landed after another claimer had re-read
		// and won: wait until that one has renewed, seen this claim and
		// stopped writing (it trusts its lease for two renewals at most).
		wait += 2 * l.cfg.Renew
		l.log.Warn("the claim's rename was slow; waiting for any other claimer to step down", "path", l.cfg.Path, "rename", took.String(), "wait", wait.String())
	}
	if err := l.cfg.Sleep(ctx, wait); err != nil {
		l.unlock() // shutting down; the claim goes stale like any other
		return
	}
	rec, raw, err := l.read()
	if err == nil && rec.Holder == l.id {
		l.won(rec, why)
		return
	}
	l.unlock()
	l.seen, l.seenAt = raw, l.cfg.Now()
	l.log.Info("another dashboard took the writer lease first", "path", l.cfg.Path, "writer", rec.Node)
	l.set(State{Holder: rec.Node}, false)
}

func (l *Lease) won(rec record, why string) {
	now := l.cfg.Now()
	l.counter, l.renewed, l.seen, l.lastErr = rec.Counter, now, nil, ""
	l.mu.Lock()
	l.confirmed = now
	l.mu.Unlock()
	l.log.Info("took the writer lease", "path", l.cfg.Path, "node", l.cfg.Node, "reason", why)
	l.set(State{Writer: true, Holder: l.cfg.Node}, true)
}

// renew checks that the lease still names this dashboard and raises its
// counter. Finding it taken ends writing at once.
func (l *Lease) renew(ctx context.Context) {
	rec, raw, err := l.read()
	now := l.cfg.Now()
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Removed under us (by hand?): put it back unless another
		// dashboard was quicker.
		mine := record{Node: l.cfg.Node, Holder: l.id, Counter: l.counter + 1}
		if ok, err := l.writeNew(mine); err == nil && ok {
			l.renewedNow(mine.Counter, now)
			return
		}
		l.lost(record{}, raw, "the lease file was removed")
		return
	case err != nil:
		l.renewFailed(err, now)
		return
	case rec.Holder != l.id:
		l.lost(rec, raw, "another dashboard holds the lease now")
		return
	}
	l.mu.Lock()
	l.confirmed = now
	l.mu.Unlock()
	next := max(rec.Counter, l.counter) + 1
	if err := l.write(record{Node: l.cfg.Node, Holder: l.id, Counter: next}); err != nil {
		l.renewFailed(err, now)
		return
	}
	l.renewedNow(next, now)
}

func (l *Lease) renewedNow(counter uint64, now time.Time) {
	if l.lastErr != "" {
		l.log.Info("writer lease renewed again", "path", l.cfg.Path)
		l.lastErr = ""
	}
	// A holder that took the lease while a dead or paused process of this
	// machine still had the lock file takes the lock now, so this node's
	// next dashboard cannot mistake it for gone.
	l.lock()
	l.counter, l.renewed = counter, now
	l.mu.Lock()
	l.confirmed = now
	l.mu.Unlock()
}

// renewFailed logs a failed renewal once. A holder that cannot renew for
// most of Stale steps down: the others will soon take the lease as free,
// and two writers are worse than none.
func (l *Lease) renewFailed(err error, now time.Time) {
	l.warnOnce("could not renew the writer lease", err)
	if now.Sub(l.renewed) >= l.cfg.Stale*2/3 {
		l.lost(record{}, nil, fmt.Sprintf("the lease could not be renewed for %s", now.Sub(l.renewed).Round(time.Second)))
	}
}

func (l *Lease) lost(rec record, raw []byte, why string) {
	l.unlock()
	l.seen, l.seenAt = raw, l.cfg.Now()
	l.log.Warn("lost the writer lease; this dashboard is read-only now", "path", l.cfg.Path, "writer", rec.Node, "reason", why)
	l.set(State{Holder: rec.Node}, true)
}

// warnOnce logs trouble with the file once, not at every step it lasts.
func (l *Lease) warnOnce(msg string, err error) {
	if key := msg + err.Error(); l.lastErr != key {
		l.log.Warn(msg, "path", l.cfg.Path, "error", err)
		l.lastErr = key
	}
}

// set records st and, when it differs from the last (or force), announces it.
func (l *Lease) set(st State, force bool) {
	l.mu.Lock()
	changed := l.state != st
	l.state = st
	l.mu.Unlock()
	if !changed && !force {
		return
	}
	select {
	case <-l.changes: // replaced by the newer state
	default:
	}
	l.changes <- st
}

// read returns the lease file's record and raw bytes. Content that does not
// parse is a record naming nobody; it goes stale like any other.
func (l *Lease) read() (record, []byte, error) {
	raw, err := os.ReadFile(l.cfg.Path)
	if err != nil {
		return record{}, nil, err
	}
	var rec record
	if json.Unmarshal(raw, &rec) != nil {
		rec = record{}
	}
	return rec, raw, nil
}

// write replaces the lease file with rec atomically.
func (l *Lease) write(rec record) error {
	tmp, err := l.temp(rec)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, l.cfg.Path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("replace lease: %w", err)
	}
	return nil
}

// writeNew creates the lease file with rec unless it exists; ok is false
// when it did.
func (l *Lease) writeNew(rec record) (ok bool, err error) {
	tmp, err := l.temp(rec)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	err = os.Link(tmp, l.cfg.Path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrExist):
		return false, nil
	}
	// No hard links here (some SMB shares): O_EXCL does the same, though a
	// reader may see the file empty for a moment; it then reads as naming
	// nobody, and this dashboard renews it before anyone calls it stale.
	f, err := os.OpenFile(l.cfg.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create lease: %w", err)
	}
	body, _ := json.Marshal(rec)
	_, err = f.Write(append(body, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("create lease: %w", err)
	}
	return true, nil
}

// temp writes rec to a synced temporary file beside the lease.
func (l *Lease) temp(rec record) (string, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(filepath.Dir(l.cfg.Path), "."+filepath.Base(l.cfg.Path)+"-*")
	if err != nil {
		return "", fmt.Errorf("write lease: %w", err)
	}
	_, err = f.Write(append(body, '\n'))
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write lease: %w", err)
	}
	return f.Name(), nil
}

// lock takes the lock file's flock for this dashboard, if it can at once;
// it reports whether this dashboard holds it now.
func (l *Lease) lock() bool {
	if l.lockFile != nil {
		return true
	}
	f, err := os.OpenFile(l.cfg.Path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		l.log.Debug("could not open the lease's lock file", "path", l.cfg.Path+".lock", "error", err)
		return false
	}
	if err := flock(f); err != nil {
		// Held by a live process on this machine, or a filesystem without
		// flock: either way nothing says the holder is gone.
		f.Close()
		return false
	}
	l.lockFile = f
	return true
}

func (l *Lease) unlock() {
	if l.lockFile != nil {
		l.lockFile.Close() // closing drops the flock
		l.lockFile = nil
	}
}
