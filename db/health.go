package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/ncruces/go-sqlite3"

	"dashboard/model"
)

// writeProbeKey is the settings key Health's probe write adds and removes.
const writeProbeKey = "_write_probe"

// health is what the store has learnt about its database from the writes
// it tried: a full disk, or a file that is no longer the one it opened.
type health struct {
	mu       sync.Mutex
	full     bool   // the last write failed for want of space
	replaced string // why the file is not the one opened; "" while it is
}

func (h *health) diskFull(log *slog.Logger, path string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		log.Error("database write refused: disk or quota full", "path", path, "error", err)
	}
	h.full = true
}

func (h *health) wrote(log *slog.Logger, path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.full {
		log.Info("database writes succeed again after the disk was full", "path", path)
	}
	h.full = false
}

func (h *health) isFull() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full
}

// setReplaced records, once, that the file was deleted or replaced; it
// reports whether this call was the first.
func (h *health) setReplaced(why string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.replaced != "" {
		return false
	}
	h.replaced = why
	return true
}

func (h *health) isReplaced() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.replaced != ""
}

// reset forgets what was learnt about a pool that is gone.
func (h *health) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.full, h.replaced = false, ""
}

// isDiskFull reports whether err is the disk or the quota saying no.
// SQLite reports ENOSPC as SQLITE_FULL, but a quota's EDQUOT only as an I/O
// error whose errno is often gone by the time it is returned; for I/O errors
// spaceLeft asks the filesystem whether there is room for a small file.
func (s *Store) isDiskFull(err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, sqlite3.FULL), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return true
	case errors.Is(err, sqlite3.IOERR):
		serr := s.opts.spaceLeft(filepath.Dir(s.path))
		return errors.Is(serr, syscall.ENOSPC) || errors.Is(serr, syscall.EDQUOT)
	}
	return false
}

// spaceLeft writes and syncs a small file in dir and removes it: its error
// says whether the disk or the quota has room (network filesystems may only
// report either at the sync).
func spaceLeft(dir string) error {
	f, err := os.CreateTemp(dir, ".space-check-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, 64<<10))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkFile compares the file the pool opened with what the path names now.
// A file deleted or replaced (a restore copied over it, a cleanup script, a
// second pod recreating it) keeps receiving this pool's writes, where nobody
// will ever read them; refusing them is the only honest answer.
func (s *Store) checkFile(c *conn) error {
	f := c.openedFile(s.path)
	if f == nil {
		return nil // a read-only pool waiting for the writer to create the file
	}
	why := ""
	opened, err := f.Stat()
	if err != nil {
		why = fmt.Sprintf("the open database file cannot be examined: %v", err)
	} else if now, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		why = "the database file was deleted"
	} else if err != nil {
		why = fmt.Sprintf("the database path cannot be examined: %v", err)
	} else if !os.SameFile(opened, now) {
		why = "another file was put in place of the database"
	}
	if why == "" {
		return nil
	}
	if s.health.setReplaced(why) {
		s.log.Error("database file deleted or replaced under the running dashboard; nothing more is saved until it restarts",
			"path", s.path, "problem", why)
	}
	return &model.Error{
		Code:    model.CodeDatabaseUnavailable,
		Message: fmt.Sprintf("The database file %s was deleted or replaced while the dashboard was running, so nothing more can be saved. Restart the dashboard to open the file now at that path.", s.path),
	}
}

// Health reports the database's state for GET /api/health: "error" when it
// does not answer or its file was deleted or replaced, "disk_full" while
// the last write failed for want of space, else "ok". The error says why,
// for the log.
//
// A store whose disk was full tries one small write here, so health clears
// as soon as space is freed, not only at the next write someone makes.
func (s *Store) Health(ctx context.Context) (model.DBState, error) {
	s.mu.RLock()
	err := s.checkFile(s.cur)
	s.mu.RUnlock()
	if err != nil {
		return model.DBError, err
	}
	if err := s.Ping(ctx); err != nil {
		return model.DBError, err
	}
	if !s.health.isFull() {
		return model.DBOK, nil
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		// A row added and removed in one transaction changes a page, so
		// the commit needs the journal and database space a real write
		// needs, and leaves nothing behind. (Rewriting a value with itself
		// would not do: SQLite skips writing a cell that did not change.)
		if _, err := tx.ExecContext(ctx, sqlInsertDefaultSetting, writeProbeKey, "", formatTime(s.now())); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM settings WHERE key = ?`, writeProbeKey)
		return err
	})
	if model.ErrorCode(err) == model.CodeDiskFull {
		return model.DBDiskFull, err
	}
	if err != nil && s.health.isFull() {
		// Not the disk this time (read-only now, say): still unproven.
		return model.DBDiskFull, err
	}
	return model.DBOK, nil
}
