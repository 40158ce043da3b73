package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"dashboard/model"
)

// recover moves the corrupt database aside (never deleting it) and opens a
// fresh one in its place.
func (s *Store) recover(ctx context.Context, opts Options, problem string) error {
	aside, err := moveAside(s.path, s.now().UTC().Format("20060102T150405Z"))
	if err != nil {
		return fmt.Errorf("recover corrupt database %s: %w", s.path, err)
	}
	s.log.Warn("database was corrupt; kept a copy and started a fresh one",
		"path", s.path, "kept_copy", aside, "problem", problem)
	s.recovered = aside

	if err := ensureFile(s.path); err != nil {
		return err
	}
	again, err := s.openChecked(ctx, opts)
	if err != nil {
		return err
	}
	if again != "" {
		return fmt.Errorf("open database %s: fresh database failed its check: %s", s.path, again)
	}
	return nil
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
// file is.
func (s *Store) logRecovery(ctx context.Context, problem string) error {
	details, err := json.Marshal(map[string]string{
		"kept_copy": s.recovered,
		"problem":   problem,
	})
	if err != nil {
		return fmt.Errorf("log database recovery: %w", err)
	}
	_, err = s.InsertActivity(ctx, model.Activity{
		Type:     model.ActivityError,
		Status:   model.ActivityFailed,
		Title:    "Database was corrupt and has been reset",
		Subtitle: "The damaged file was kept at " + s.recovered,
		Details:  details,
	})
	if err != nil {
		return fmt.Errorf("log database recovery: %w", err)
	}
	return nil
}
