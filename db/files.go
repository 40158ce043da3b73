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
