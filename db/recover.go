package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"dashboard/model"
)

// recover moves the corrupt database aside (never deleting it) and opens a
// fresh one in its place; it returns the fresh pool and where the old file
// went.
func (s *Store) recover(ctx context.Context, problem string) (*conn, string, error) {
	aside, err := moveAside(s.path, s.now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return nil, "", fmt.Errorf("recover corrupt database %s: %w", s.path, err)
	}
	s.log.Warn("database was corrupt; kept a copy and started a fresh one",
		"path", s.path, "kept_copy", aside, "problem", problem)

	if err := ensureFile(s.path); err != nil {
		return nil, "", err
	}
	c, again, err := s.openChecked(ctx)
	if err != nil {
		return nil, "", err
	}
	if again != "" {
		return nil, "", fmt.Errorf("open database %s: fresh database failed its check: %s", s.path, again)
	}
	return c, aside, nil
}

// moveAside renames path and its sidecars to path.corrupt-<stamp>, adding a
// counter if that name is taken, and returns the new main path.
func moveAside(path, stamp string) (string, error) {
	base := path + ".corrupt-" + stamp
	aside := base
	for i := 2; exists(aside); i++ {
		aside = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(path, aside); err != nil {
		return "", fmt.Errorf("move aside: %w", err)
	}
	// The sidecars move too, so the kept copy stays self-consistent (a -wal
	// may hold committed pages the main file lacks).
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		err := os.Rename(path+suffix, aside+suffix)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("move aside %s: %w", suffix, err)
		}
	}
	return aside, nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// logRecovery records the reset in the activity log, so the user sees in the
// UI (not only in the pod's logs) that history was lost and where the old
// file is. It writes through db, the pool being opened, which is not yet
// the store's.
func (s *Store) logRecovery(ctx context.Context, db *sql.DB, aside, problem string) error {
	details, err := json.Marshal(map[string]string{
		"kept_copy": aside,
		"problem":   problem,
	})
	if err != nil {
		return fmt.Errorf("log database recovery: %w", err)
	}
	created := formatTime(s.now().UTC().Truncate(time.Millisecond))
	err = s.retryWrite(ctx, db, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlInsertActivity, model.ActivityError, model.ActivityFailed,
			"Database was corrupt and has been reset", "The damaged file was kept at "+aside, string(details), created)
		return err
	})
	if err != nil {
		return fmt.Errorf("log database recovery: %w", err)
	}
	return nil
}
