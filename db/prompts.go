package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"dashboard/model"
)

const sqlSelectPromptStatus = `SELECT status FROM comfyui_prompts WHERE prompt_id = ?`

// PromptStatus returns the status last recorded for a ComfyUI prompt (the
// status of the last activity logged for it); ok is false when the prompt
// was never seen.
func (s *Store) PromptStatus(ctx context.Context, promptID string) (status model.ActivityStatus, ok bool, err error) {
	db, done := s.reader()
	defer done()
	err = db.QueryRowContext(ctx, sqlSelectPromptStatus, promptID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read prompt %s: %w", promptID, err)
	}
	return status, true, nil
}

const sqlUpsertPrompt = `INSERT INTO comfyui_prompts (prompt_id, status, updated_at) VALUES (?, ?, ?)
ON CONFLICT(prompt_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at`

// SetPromptStatus records (or updates) a ComfyUI prompt's status.
func (s *Store) SetPromptStatus(ctx context.Context, promptID string, status model.ActivityStatus) error {
	if promptID == "" || status == "" {
		return fmt.Errorf("save prompt status: empty prompt id or status")
	}
	now := formatTime(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlUpsertPrompt, promptID, status, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("save prompt %s: %w", promptID, err)
	}
	return nil
}

const sqlDeletePromptsBefore = `DELETE FROM comfyui_prompts WHERE updated_at < ?`

// DeletePromptsBefore forgets prompts last updated before cutoff.
func (s *Store) DeletePromptsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlDeletePromptsBefore, formatTime(cutoff))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete old prompts: %w", err)
	}
	return n, nil
}
