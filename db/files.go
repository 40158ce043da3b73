package db

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"dashboard/model"
)

const sqlSelectModelFiles = `SELECT path, sha256, size, modified_ns, preset_id FROM model_files`

// ModelFiles returns every file recorded in the models folder.
func (s *Store) ModelFiles(ctx context.Context) ([]model.ModelFile, error) {
	db, done := s.reader()
	defer done()
	rows, err := db.QueryContext(ctx, sqlSelectModelFiles)
	if err != nil {
		return nil, fmt.Errorf("list model files: %w", err)
	}
	defer rows.Close()
	var out []model.ModelFile
	for rows.Next() {
		var f model.ModelFile
		var ns int64
		if err := rows.Scan(&f.Path, &f.SHA256, &f.Size, &ns, &f.PresetID); err != nil {
			return nil, fmt.Errorf("list model files: %w", err)
		}
		f.ModTime = time.Unix(0, ns)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list model files: %w", err)
	}
	return out, nil
}

const sqlUpsertModelFile = `INSERT INTO model_files (path, sha256, size, modified_ns, preset_id, recorded_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size,
modified_ns = excluded.modified_ns, preset_id = excluded.preset_id, recorded_at = excluded.recorded_at`

// RecordModelFile remembers the file now at f.Path, replacing what was
// recorded there before.
func (s *Store) RecordModelFile(ctx context.Context, f model.ModelFile) error {
	if f.Path == "" || f.SHA256 == "" {
		return fmt.Errorf("record model file: empty path or sha256")
	}
	now := formatTime(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlUpsertModelFile, f.Path, f.SHA256, f.Size, f.ModTime.UnixNano(), f.PresetID, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("record model file %s: %w", f.Path, err)
	}
	return nil
}

const sqlDeleteModelFile = `DELETE FROM model_files WHERE path = ?`

// ForgetModelFile forgets what was recorded about the file at path, in
// model_files and corrupt_files: it was removed.
func (s *Store) ForgetModelFile(ctx context.Context, path string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, sqlDeleteModelFile, path); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, sqlDeleteCorruptFile, path)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget model file %s: %w", path, err)
	}
	return nil
}

const sqlSelectCorruptFiles = `SELECT path, size, modified_ns, expected_sha256, actual_sha256, found_at FROM corrupt_files`

// CorruptFiles returns every file a verify found corrupt and nothing has
// replaced since.
func (s *Store) CorruptFiles(ctx context.Context) ([]model.CorruptFile, error) {
	db, done := s.reader()
	defer done()
	rows, err := db.QueryContext(ctx, sqlSelectCorruptFiles)
	if err != nil {
		return nil, fmt.Errorf("list corrupt files: %w", err)
	}
	defer rows.Close()
	var out []model.CorruptFile
	for rows.Next() {
		var f model.CorruptFile
		var ns int64
		var found dbTime
		if err := rows.Scan(&f.Path, &f.Size, &ns, &f.Expected, &f.Actual, &found); err != nil {
			return nil, fmt.Errorf("list corrupt files: %w", err)
		}
		f.ModTime, f.FoundAt = time.Unix(0, ns), found.Time
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list corrupt files: %w", err)
	}
	return out, nil
}

const sqlUpsertCorruptFile = `INSERT INTO corrupt_files (path, size, modified_ns, expected_sha256, actual_sha256, found_at)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT(path) DO UPDATE SET size = excluded.size, modified_ns = excluded.modified_ns,
expected_sha256 = excluded.expected_sha256, actual_sha256 = excluded.actual_sha256, found_at = excluded.found_at`

// RecordCorruptFile remembers that the file now at f.Path does not match
// its checksum.
func (s *Store) RecordCorruptFile(ctx context.Context, f model.CorruptFile) error {
	if f.Path == "" || f.Expected == "" {
		return fmt.Errorf("record corrupt file: empty path or expected sha256")
	}
	found := f.FoundAt
	if found.IsZero() {
		found = s.now()
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlUpsertCorruptFile, f.Path, f.Size, f.ModTime.UnixNano(), f.Expected, f.Actual, formatTime(found))
		return err
	})
	if err != nil {
		return fmt.Errorf("record corrupt file %s: %w", f.Path, err)
	}
	return nil
}

const sqlDeleteCorruptFile = `DELETE FROM corrupt_files WHERE path = ?`

// ForgetCorruptFile forgets that the file at path was corrupt: a verified
// copy replaced it, or it passed a verify.
func (s *Store) ForgetCorruptFile(ctx context.Context, path string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlDeleteCorruptFile, path)
		return err
	})
	if err != nil {
		return fmt.Errorf("forget corrupt file %s: %w", path, err)
	}
	return nil
}
