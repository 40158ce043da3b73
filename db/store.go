// Package db is the dashboard's SQLite store: settings, the activity log,
// download history and the ComfyUI prompts already logged.
//
// Open takes care of what a pod's network volume can throw at it: it picks the
// journal mode by filesystem (the rollback journal where other machines may
// share the file, WAL elsewhere), applies the embedded migrations, moves a
// corrupt file aside instead of refusing to start, keeps the files at mode
// 0600, and retries writes that find the database locked by another process.
// Every write is one short BEGIN IMMEDIATE transaction, and is refused when
// this dashboard does not hold the volume's writer lease (the store is then
// opened read-only), when the file at the path is no longer the one opened,
// or, as disk_full, when the disk or quota is full.
package db

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers the "sqlite3" database/sql driver
)

// Options configures Open. The zero value is usable.
type Options struct {
	Logger    *slog.Logger     // nil → slog.Default()
	Now       func() time.Time // nil → time.Now; used for every timestamp written
	BusyRetry time.Duration    // total budget for retrying SQLITE_BUSY writes; 0 → 10s
	// Journal is JournalAuto ("" too), JournalWAL or JournalDelete.
	Journal string
	// ReadOnly opens the database read-only, for a dashboard that does not
	// hold the volume's writer lease: nothing is created, migrated or
	// recovered, and every write answers model.CodeReadOnly. Promote makes
	// the store writable later.
	ReadOnly bool
	// Guard, when set, is asked before every write; an error it returns
	// (the lease's read_only) refuses the write. It is how a dashboard that
	// has just lost the volume's writer lease stops writing at once, before
	// the store is reopened read-only.
	Guard func(ctx context.Context) error

	// Unexported knobs so tests can reach the slow and rare paths quickly.
	busyTimeout time.Duration // SQLite busy_timeout; 0 → 5s
	vfs         string        // SQLite VFS name; tests register ones without WAL support
	fsMagic     func(dir string) (int64, error)
	spaceLeft   func(dir string) error
}

// Journal modes JournalMode reports, best first.
const (
	journalWAL          = "wal"
	journalWALExclusive = "wal-exclusive"
	journalDelete       = "delete"
)

const (
	defaultBusyTimeout = 5 * time.Second
	defaultBusyRetry   = 10 * time.Second
	fileMode           = 0o600
	maxOpenConns       = 4
)

// Store is the dashboard's database handle. It is safe for concurrent use.
type Store struct {
	opts      Options
	log       *slog.Logger
	now       func() time.Time
	busyRetry time.Duration
	path      string
	// writeSem serialises this process's write transactions, so they queue
	// here instead of spinning in SQLite's busy handler against each other;
	// busy handling and retries are then only about other processes.
	writeSem chan struct{}

	// mu guards cur and recovered. Every statement holds it shared for its
	// whole run, so Promote and Demote, which hold it exclusively to swap
	// the pool, never close a pool under a running query.
	mu        sync.RWMutex
	cur       *conn
	recovered string

	health health
}

// conn is one opened pool: read-write or read-only.
type conn struct {
	db          *sql.DB
	journalMode string
	readOnly    bool
	// file is the database file as this pool opened it, kept open so its
	// identity can be compared with whatever the path names now: a file
	// deleted or replaced under the dashboard would otherwise swallow every
	// later write without a word. nil while a read-only pool waits for the
	// writer to create the file.
	fileMu sync.Mutex
	file   *os.File
}

// openedFile is the file the pool has open. A read-only pool opened before
// the file existed takes the file that exists now.
func (c *conn) openedFile(path string) *os.File {
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	if c.file == nil && c.readOnly {
		if f, err := os.Open(path); err == nil {
			c.file = f
		}
	}
	return c.file
}

func (c *conn) close() error {
	err := c.db.Close()
	c.fileMu.Lock()
	defer c.fileMu.Unlock()
	if c.file != nil {
		c.file.Close()
		c.file = nil
	}
	return err
}

// Open opens (creating if needed) the database at path, migrates it and
// applies default settings. A file that is not a database or fails PRAGMA
// quick_check is moved aside and replaced by a fresh database; see Recovered.
// A zero-length file is an empty database to SQLite and is simply
// initialised in place. A directory at path is an error naming it. With
// opts.ReadOnly, see openReadOnly.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BusyRetry <= 0 {
		opts.BusyRetry = defaultBusyRetry
	}
	if opts.busyTimeout <= 0 {
		opts.busyTimeout = defaultBusyTimeout
	}
	if opts.Journal == "" {
		opts.Journal = JournalAuto
	}
	if !ValidJournal(opts.Journal) {
		return nil, fmt.Errorf("open database %s: journal %q is not auto, wal or delete", path, opts.Journal)
	}
	if opts.fsMagic == nil {
		opts.fsMagic = fsMagic
	}
	if opts.spaceLeft == nil {
		opts.spaceLeft = spaceLeft
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{
		opts:      opts,
		log:       opts.Logger,
		now:       opts.Now,
		busyRetry: opts.BusyRetry,
		path:      abs,
		writeSem:  make(chan struct{}, 1),
	}
	if opts.ReadOnly {
		c, err := s.openReadOnly(ctx)
		if err != nil {
			return nil, err
		}
		s.cur = c
		return s, nil
	}
	c, err := s.openWritable(ctx)
	if err != nil {
		return nil, err
	}
	s.cur = c
	return s, nil
}

// openWritable opens the database for writing: creates, recovers and
// migrates it as Open describes. The store's own pool is not touched, so
// Promote can build the new pool while the old one still serves reads.
func (s *Store) openWritable(ctx context.Context) (*conn, error) {
	if err := ensureFile(s.path); err != nil {
		return nil, err
	}
	// Tighten before opening too, so a -wal created now inherits 0600 from a
	// main file an older tool left at 0644.
	s.tightenModes()
	c, problem, err := s.openChecked(ctx)
	if err != nil {
		return nil, err
	}
	recovered := ""
	if problem != "" {
		if c, recovered, err = s.recover(ctx, problem); err != nil {
			return nil, err
		}
	}
	s.tightenModes()

	if err := s.migrate(ctx, c.db); err != nil {
		c.close()
		return nil, err
	}
	if recovered != "" {
		if err := s.logRecovery(ctx, c.db, recovered, problem); err != nil {
			c.close()
			return nil, err
		}
	}
	s.mu.Lock()
	s.recovered = recovered
	s.mu.Unlock()
	return c, nil
}

// openChecked opens the pool and runs PRAGMA quick_check. A database that is
// not a database or fails the check is reported through problem, with the
// pool left closed; other failures are errors.
func (s *Store) openChecked(ctx context.Context) (c *conn, problem string, err error) {
	db, mode, err := s.openPool(ctx)
	if err != nil {
		if isCorrupt(err) {
			return nil, err.Error(), nil
		}
		return nil, "", fmt.Errorf("open database %s: %w", s.path, err)
	}
	problem, err = quickCheck(ctx, db)
	if err != nil {
		db.Close()
		return nil, "", fmt.Errorf("check database %s: %w", s.path, err)
	}
	if problem != "" {
		db.Close()
		return nil, problem, nil
	}
	// The pool has the file open now (quick_check read it), so this names
	// the same file.
	f, err := os.Open(s.path)
	if err != nil {
		db.Close()
		return nil, "", fmt.Errorf("open database %s: %w", s.path, err)
	}
	return &conn{db: db, journalMode: mode, file: f}, "", nil
}

// openReadOnly opens the database read-only. The file is neither created
// nor checked: a dashboard that does not hold the lease must not touch it,
// and one that starts beside a writer still creating it simply finds it at
// a later query (the pool opens connections as they are needed).
func (s *Store) openReadOnly(ctx context.Context) (*conn, error) {
	fi, err := os.Stat(s.path)
	if err == nil && fi.IsDir() {
		return nil, fmt.Errorf("open database %s: path is a directory, not a database file", s.path)
	}
	q := []string{
		"mode=ro",
		fmt.Sprintf("_pragma=busy_timeout(%d)", s.opts.busyTimeout.Milliseconds()),
		"_pragma=query_only(1)",
	}
	if s.opts.vfs != "" {
		q = append(q, "vfs="+uriEscape(s.opts.vfs))
	}
	db, err := sql.Open("sqlite3", "file:"+uriEscape(s.path)+"?"+strings.Join(q, "&"))
	if err != nil {
		return nil, fmt.Errorf("open database %s read-only: %w", s.path, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	c := &conn{db: db, readOnly: true, journalMode: "read-only"}
	var mode string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		s.log.Warn("database not readable yet; reads fail until the writer has created it",
			"path", s.path, "error", err)
	} else {
		c.journalMode = "read-only (" + mode + ")"
	}
	c.openedFile(s.path)
	return c, nil
}

// Promote reopens a read-only store for writing: this dashboard has taken
// the volume's writer lease. The file is created, recovered and migrated as
// Open does. Reads keep being served by the read-only pool until the
// writable one is ready. A store that is already writable is left alone.
func (s *Store) Promote(ctx context.Context) error {
	return s.reopen(ctx, false)
}

// Demote reopens a writable store read-only: another dashboard holds the
// lease now. The Guard has already been refusing writes; waiting for the
// write lock here lets a write that was already running finish first.
func (s *Store) Demote(ctx context.Context) error {
	return s.reopen(ctx, true)
}

// reopen swaps the pool for one opened read-only or writable, holding the
// write lock meanwhile; a pool already so is kept.
func (s *Store) reopen(ctx context.Context, readOnly bool) error {
	unlock, err := s.lockWrites(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	s.mu.RLock()
	same := s.cur.readOnly == readOnly
	s.mu.RUnlock()
	if same {
		return nil
	}
	open := s.openWritable
	if readOnly {
		open = s.openReadOnly
	}
	c, err := open(ctx)
	if err != nil {
		return err
	}
	s.swap(c)
	s.health.reset()
	return nil
}

// lockWrites waits for this process's write lock: every write transaction,
// and the swap of pools, holds it.
func (s *Store) lockWrites(ctx context.Context) (unlock func(), err error) {
	select {
	case s.writeSem <- struct{}{}:
		return func() { <-s.writeSem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// swap makes c the store's pool and closes the old one once no statement
// uses it.
func (s *Store) swap(c *conn) {
	s.mu.Lock()
	old := s.cur
	s.cur = c
	s.mu.Unlock()
	if err := old.close(); err != nil {
		s.log.Warn("close previous database pool", "path", s.path, "error", err)
	}
}

// reader returns the pool for one read and the function that ends it.
func (s *Store) reader() (*sql.DB, func()) {
	s.mu.RLock()
	return s.cur.db, s.mu.RUnlock
}

// ReadOnly reports whether the store was opened (or demoted) read-only.
func (s *Store) ReadOnly() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.readOnly
}

// ensureFile creates the database file with mode 0600 if it is missing, so
// SQLite never creates it with the umask's looser default. A directory at
// path is refused with an error naming it.
func ensureFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("open database %s: path is a directory, not a database file", path)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("open database %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, fileMode)
	if errors.Is(err, fs.ErrExist) {
		return nil // another process won the race; it will be 0600 too, or chmodded below
	}
	if err != nil {
		return fmt.Errorf("create database file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file %s: %w", path, err)
	}
	return nil
}

// tightenModes makes the database and its -wal/-shm files 0600. SQLite (here,
// the driver's VFS) creates -shm with the umask's default; -wal and -journal
// get the main file's mode through modeof= in the DSN, but only once the main
// file is 0600, which a file made by an older tool may not be.
func (s *Store) tightenModes() {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		err := os.Chmod(s.path+suffix, fileMode)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("could not restrict database file mode", "path", s.path+suffix, "error", err)
		}
	}
}

// openPool opens the connection pool in the journal mode the setting and
// the filesystem call for (chooseJournal), logging which and why. Where
// WAL is a candidate it is tried first; else WAL with exclusive locking (WAL
// without shared memory, one connection); else the rollback journal.
// Falling back is logged, never fatal. Errors saying the file is not a
// database are returned unchanged so the caller can recover.
//
// The modes are tried on a scratch database next to the real one first:
// switching to WAL rewrites the database header before SQLite finds out
// whether the -wal and -shm files work, and a header left saying WAL on a
// filesystem where WAL fails makes the file unreadable in every mode.
func (s *Store) openPool(ctx context.Context) (*sql.DB, string, error) {
	opts := s.opts
	magic, statErr := opts.fsMagic(filepath.Dir(s.path))
	choice := chooseJournal(opts.Journal, magic, statErr)
	modes := choice.modes
	var walErr error // why WAL was not used, for the warning
	// Every WAL candidate is probed, the last one too when the setting
	// leaves no rollback journal to fall back on; the rollback journal
	// itself needs no probe.
	for len(modes) > 0 && modes[0] != journalDelete {
		ran, err := probeJournalMode(ctx, s.path, modes[0], opts)
		if !ran {
			// No scratch file here (say, a folder we may not create in):
			// say so and let the real database decide below.
			opts.Logger.Debug("could not probe journal modes", "path", s.path, "error", err)
			break
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		opts.Logger.Debug("journal mode failed on scratch database", "path", s.path, "journal_mode", modes[0], "error", err)
		if walErr == nil {
			walErr = err
		}
		modes = modes[1:]
	}
	var lastErr error
	for _, mode := range modes {
		db, err := tryJournalMode(ctx, s.path, mode, opts)
		if err == nil {
			if mode != choice.modes[0] {
				opts.Logger.Warn("WAL journal not available on this filesystem; using fallback",
					"path", s.path, "journal_mode", mode, "error", cmp.Or(walErr, lastErr))
			}
			opts.Logger.Info("database journal", "path", s.path, "journal_mode", mode,
				"filesystem", choice.fs, "setting", opts.Journal, "reason", choice.reason)
			return db, mode, nil
		}
		if isCorrupt(err) || isBusy(err) || ctx.Err() != nil {
			return nil, "", err
		}
		opts.Logger.Debug("journal mode not available", "path", s.path, "journal_mode", mode, "error", err)
		lastErr = err
		if walErr == nil {
			walErr = err
		}
	}
	if opts.Journal == JournalWAL {
		return nil, "", fmt.Errorf("--db-journal wal: WAL does not work on this filesystem (%s); use auto or delete: %w", choice.fs, cmp.Or(lastErr, walErr))
	}
	return nil, "", lastErr
}

// probeJournalMode opens a scratch database beside path in mode, writes and
// reads a row, then removes it. ran is false when no scratch file could be
// made, which says nothing about the journal mode.
func probeJournalMode(ctx context.Context, path, mode string, opts Options) (ran bool, err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".walcheck-*")
	if err != nil {
		return false, err
	}
	scratch := f.Name()
	f.Close()
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(scratch + suffix)
		}
	}()
	db, err := tryJournalMode(ctx, scratch, mode, opts)
	if err != nil {
		return true, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE probe (x); INSERT INTO probe VALUES (1)`); err != nil {
		return true, err
	}
	var n int
	return true, db.QueryRowContext(ctx, `SELECT count(*) FROM probe`).Scan(&n)
}

func tryJournalMode(ctx context.Context, path, mode string, opts Options) (*sql.DB, error) {
	db, err := sql.Open("sqlite3", buildDSN(path, mode, opts))
	if err != nil {
		return nil, err
	}
	if mode == journalWALExclusive {
		// The exclusive lock belongs to one connection for its lifetime; a
		// second pooled connection would wait on it forever.
		db.SetMaxOpenConns(1)
	} else {
		// Each connection is a WebAssembly SQLite instance with its own
		// memory; a few cover a single-user dashboard's concurrency.
		db.SetMaxOpenConns(maxOpenConns)
	}
	want := mode
	if mode == journalWALExclusive {
		want = journalWAL
	}
	// The query opens the first connection, which runs the DSN's pragmas:
	// SQLite answers a journal_mode it cannot set with the old mode rather
	// than an error, so read back what it became.
	var got string
	if err := db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&got); err != nil {
		db.Close()
		return nil, err
	}
	if !strings.EqualFold(got, want) {
		db.Close()
		return nil, fmt.Errorf("journal_mode is %q after asking for %q", got, want)
	}
	if mode == journalWALExclusive {
		var locking string
		if err := db.QueryRowContext(ctx, `PRAGMA locking_mode`).Scan(&locking); err != nil {
			db.Close()
			return nil, err
		}
		if !strings.EqualFold(locking, "exclusive") {
			db.Close()
			return nil, fmt.Errorf("locking_mode is %q after asking for exclusive", locking)
		}
	}
	return db, nil
}

// buildDSN makes the driver DSN. busy_timeout comes first so it covers the
// other pragmas; locking_mode must precede journal_mode for WAL without shared
// memory. _txlock=immediate makes every transaction BEGIN IMMEDIATE, so a
// write takes the lock up front instead of failing on upgrade mid-transaction.
func buildDSN(path, mode string, opts Options) string {
	q := []string{fmt.Sprintf("_pragma=busy_timeout(%d)", opts.busyTimeout.Milliseconds())}
	switch mode {
	case journalWAL:
		q = append(q, "_pragma=journal_mode(wal)")
	case journalWALExclusive:
		q = append(q, "_pragma=locking_mode(exclusive)", "_pragma=journal_mode(wal)")
	case journalDelete:
		// FULL: with the rollback journal a commit is durable only once the
		// journal is synced before the database is written; on a network
		// filesystem that is the only ordering another machine can rely on.
		q = append(q, "_pragma=journal_mode(delete)", "_pragma=synchronous(full)")
	}
	q = append(q, "_pragma=foreign_keys(1)", "_txlock=immediate",
		// modeof gives -wal and -journal files the main file's mode (0600).
		"modeof="+uriEscape(path))
	if opts.vfs != "" {
		q = append(q, "vfs="+uriEscape(opts.vfs))
	}
	return "file:" + uriEscape(path) + "?" + strings.Join(q, "&")
}

// uriEscape percent-encodes everything but unreserved characters and '/'.
// SQLite decodes %XX in URI filenames but, unlike net/url, not '+' as space.
func uriEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '/', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// quickCheck runs PRAGMA quick_check and returns "" when the database is
// sound, or what is wrong with it.
func quickCheck(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(10)`)
	if err != nil {
		if isCorrupt(err) {
			return err.Error(), nil
		}
		return "", err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return "", err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		if isCorrupt(err) {
			return err.Error(), nil
		}
		return "", err
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return "", nil
	}
	if len(msgs) == 0 {
		return "quick_check returned nothing", nil
	}
	return strings.Join(msgs, "; "), nil
}

func isCorrupt(err error) bool {
	return errors.Is(err, sqlite3.CORRUPT) || errors.Is(err, sqlite3.NOTADB)
}

// Close closes the database.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cur.close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	db, done := s.reader()
	defer done()
	var one int
	if err := db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// JournalMode reports the journal mode Open achieved: "wal",
// "wal-exclusive" or "delete"; for a read-only store, "read-only (…)" with
// the mode the file is in.
func (s *Store) JournalMode() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur.journalMode
}

// Recovered returns the path where the last Open or Promote moved a corrupt
// database, or "" if the database was sound.
func (s *Store) Recovered() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.recovered
}

// Path is the database file's absolute path.
func (s *Store) Path() string { return s.path }
