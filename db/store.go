// Package db is the dashboard's SQLite store: settings, the activity log,
// download history and the ComfyUI prompts already logged.
//
// Open takes care of what a pod's network volume can throw at it: it picks the
// best journal mode the filesystem allows, applies the embedded migrations,
// moves a corrupt file aside instead of refusing to start, keeps the files at
// mode 0600, and retries writes that find the database locked by another
// process. Every write is one short BEGIN IMMEDIATE transaction.
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
	"time"

	"github.com/ncruces/go-sqlite3"
	_ "github.com/ncruces/go-sqlite3/driver" // registers the "sqlite3" database/sql driver
)

// Options configures Open. The zero value is usable.
type Options struct {
	Logger    *slog.Logger     // nil → slog.Default()
	Now       func() time.Time // nil → time.Now; used for every timestamp written
	BusyRetry time.Duration    // total budget for retrying SQLITE_BUSY writes; 0 → 10s

	// Unexported knobs so tests can reach the slow and rare paths quickly.
	busyTimeout time.Duration // SQLite busy_timeout; 0 → 5s
	vfs         string        // SQLite VFS name; tests register ones without WAL support
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
	db          *sql.DB
	log         *slog.Logger
	now         func() time.Time
	busyRetry   time.Duration
	path        string
	journalMode string
	recovered   string
	// writeSem serialises this process's write transactions, so they queue
	// here instead of spinning in SQLite's busy handler against each other;
	// busy handling and retries are then only about other processes.
	writeSem chan struct{}
}

// Open opens (creating if needed) the database at path, migrates it and
// applies default settings. A file that is not a database or fails PRAGMA
// quick_check is moved aside and replaced by a fresh database; see Recovered.
// A zero-length file is an empty database to SQLite and is simply
// initialised in place. A directory at path is an error naming it.
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
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := ensureFile(abs); err != nil {
		return nil, err
	}

	s := &Store{
		log:       opts.Logger,
		now:       opts.Now,
		busyRetry: opts.BusyRetry,
		path:      abs,
		writeSem:  make(chan struct{}, 1),
	}
	// Tighten before opening too, so a -wal created now inherits 0600 from a
	// main file an older tool left at 0644.
	s.tightenModes()
	problem, err := s.openChecked(ctx, opts)
	if err != nil {
		return nil, err
	}
	if problem != "" {
		if err := s.recover(ctx, opts, problem); err != nil {
			return nil, err
		}
	}
	s.tightenModes()

	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if s.recovered != "" {
		if err := s.logRecovery(ctx, problem); err != nil {
			s.db.Close()
			return nil, err
		}
	}
	return s, nil
}

// openChecked opens the pool and runs PRAGMA quick_check. A database that is
// not a database or fails the check is reported through problem, with the
// pool left closed; other failures are errors.
func (s *Store) openChecked(ctx context.Context, opts Options) (problem string, err error) {
	db, mode, err := openPool(ctx, s.path, opts)
	if err != nil {
		if isCorrupt(err) {
			return err.Error(), nil
		}
		return "", fmt.Errorf("open database %s: %w", s.path, err)
	}
	problem, err = quickCheck(ctx, db)
	if err != nil {
		db.Close()
		return "", fmt.Errorf("check database %s: %w", s.path, err)
	}
	if problem != "" {
		db.Close()
		return problem, nil
	}
	s.db = db
	s.journalMode = mode
	return "", nil
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

// openPool opens the connection pool in the best journal mode the filesystem
// supports: WAL; else WAL with exclusive locking (WAL without shared memory,
// one connection); else the rollback journal. Falling back is logged, never
// fatal. Errors saying the file is not a database are returned unchanged so
// the caller can recover.
//
// The modes are tried on a scratch database next to the real one first:
// switching to WAL rewrites the database header before SQLite finds out
// whether the -wal and -shm files work, and a header left saying WAL on a
// filesystem where WAL fails makes the file unreadable in every mode.
func openPool(ctx context.Context, path string, opts Options) (*sql.DB, string, error) {
	modes := []string{journalWAL, journalWALExclusive, journalDelete}
	var walErr error // why WAL was not used, for the warning
	for len(modes) > 1 {
		ran, err := probeJournalMode(ctx, path, modes[0], opts)
		if !ran {
			// No scratch file here (say, a folder we may not create in):
			// say so and let the real database decide below.
			opts.Logger.Debug("could not probe journal modes", "path", path, "error", err)
			break
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		opts.Logger.Debug("journal mode failed on scratch database", "path", path, "journal_mode", modes[0], "error", err)
		if walErr == nil {
			walErr = err
		}
		modes = modes[1:]
	}
	var lastErr error
	for _, mode := range modes {
		db, err := tryJournalMode(ctx, path, mode, opts)
		if err == nil {
			if mode != journalWAL {
				opts.Logger.Warn("WAL journal not available on this filesystem; using fallback",
					"path", path, "journal_mode", mode, "error", cmp.Or(walErr, lastErr))
			}
			return db, mode, nil
		}
		if isCorrupt(err) || isBusy(err) || ctx.Err() != nil {
			return nil, "", err
		}
		opts.Logger.Debug("journal mode not available", "path", path, "journal_mode", mode, "error", err)
		lastErr = err
		if walErr == nil {
			walErr = err
		}
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
		q = append(q, "_pragma=journal_mode(delete)")
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
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	return nil
}

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// JournalMode reports the journal mode Open achieved: "wal",
// "wal-exclusive" or "delete".
func (s *Store) JournalMode() string { return s.journalMode }

// Recovered returns the path where this Open moved a corrupt database, or ""
// if the database was sound.
func (s *Store) Recovered() string { return s.recovered }
