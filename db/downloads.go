package db

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"dashboard/model"
)

const sqlStartDownload = `INSERT INTO download_history
(preset_id, kind, status, files_completed, files_total, started_at) VALUES (?, ?, ?, 0, ?, ?)`

// StartDownload records an install that has begun, with status "downloading".
func (s *Store) StartDownload(ctx context.Context, presetID string, filesTotal int) (model.DownloadRecord, error) {
	return s.startJob(ctx, presetID, model.KindInstall, filesTotal)
}

// StartVerify records a verify that has begun, with status "downloading"
// like an install: it runs through the same queue.
func (s *Store) StartVerify(ctx context.Context, presetID string, filesTotal int) (model.DownloadRecord, error) {
	return s.startJob(ctx, presetID, model.KindVerify, filesTotal)
}

func (s *Store) startJob(ctx context.Context, presetID string, kind model.DownloadKind, filesTotal int) (model.DownloadRecord, error) {
	if presetID == "" {
		return model.DownloadRecord{}, fmt.Errorf("start download: empty preset id")
	}
	started := s.now().UTC().Truncate(time.Millisecond)
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlStartDownload, presetID, kind, model.DownloadRunning, filesTotal, formatTime(started))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return model.DownloadRecord{}, fmt.Errorf("start download %s: %w", presetID, err)
	}
	return model.DownloadRecord{
		ID:         id,
		PresetID:   presetID,
		Kind:       kind,
		Status:     model.DownloadRunning,
		FilesTotal: filesTotal,
		StartedAt:  started,
	}, nil
}

const sqlFinishDownload = `UPDATE download_history
SET status = ?, error_message = ?, error_code = ?, files_completed = ?, files_total = ?,
    bytes_done = ?, bytes_total = ?, completed_at = ?
WHERE id = ?`

// FinishDownload records how download id ended: completed, failed or
// cancelled. With no error, the message and code are stored as NULL; an
// interrupted download's message is stored as the word "interrupted", as the
// startup sweep (MarkInterrupted) writes it.
func (s *Store) FinishDownload(ctx context.Context, id int64, end model.DownloadEnd) error {
	if !end.Status.Ended() {
		return fmt.Errorf("finish download %d: status %q is not a final status", id, end.Status)
	}
	var msg, code any // nil binds NULL
	if e := end.Error; e != nil {
		msg, code = e.Message, string(e.Code)
		if e.Code == model.CodeInterrupted {
			msg = string(model.CodeInterrupted)
		}
	}
	now := formatTime(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlFinishDownload, end.Status, msg, code, end.FilesCompleted, end.FilesTotal,
			end.BytesDone, end.BytesTotal, now, id)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n == 0 {
			return errNoDownload(id)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("finish download %d: %w", id, err)
	}
	return nil
}

const sqlDownloadColumns = `SELECT id, preset_id, kind, status, error_message, error_code, files_completed, files_total,
       bytes_done, bytes_total, started_at, completed_at
FROM download_history`

const sqlGetDownload = sqlDownloadColumns + ` WHERE id = ?`

// GetDownload returns one download_history row; an unknown id is a
// model.CodeNotFound error.
func (s *Store) GetDownload(ctx context.Context, id int64) (model.DownloadRecord, error) {
	db, done := s.reader()
	defer done()
	r, err := scanDownload(db.QueryRowContext(ctx, sqlGetDownload, id))
	if errors.Is(err, sql.ErrNoRows) {
		return model.DownloadRecord{}, errNoDownload(id)
	}
	if err != nil {
		return model.DownloadRecord{}, fmt.Errorf("get download %d: %w", id, err)
	}
	return r, nil
}

const (
	sqlListDownloads       = sqlDownloadColumns + ` ORDER BY id DESC LIMIT ?`
	sqlListDownloadsBefore = sqlDownloadColumns + ` WHERE id < ? ORDER BY id DESC LIMIT ?`
)

// ListDownloads returns download history newest first; before > 0 returns
// only rows with a smaller id (keyset pagination).
func (s *Store) ListDownloads(ctx context.Context, before int64, limit int) ([]model.DownloadRecord, error) {
	db, done := s.reader()
	defer done()
	var rows *sql.Rows
	var err error
	if before > 0 {
		rows, err = db.QueryContext(ctx, sqlListDownloadsBefore, before, listLimit(limit))
	} else {
		rows, err = db.QueryContext(ctx, sqlListDownloads, listLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("list downloads: %w", err)
	}
	defer rows.Close()
	out := []model.DownloadRecord{}
	for rows.Next() {
		r, err := scanDownload(rows)
		if err != nil {
			return nil, fmt.Errorf("list downloads: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list downloads: %w", err)
	}
	return out, nil
}

func scanDownload(row interface{ Scan(...any) error }) (model.DownloadRecord, error) {
	var r model.DownloadRecord
	var msg, code sql.NullString
	var completed, total, bytesDone, bytesTotal sql.NullInt64
	var started, done dbTime
	if err := row.Scan(&r.ID, &r.PresetID, &r.Kind, &r.Status, &msg, &code, &completed, &total, &bytesDone, &bytesTotal, &started, &done); err != nil {
		return model.DownloadRecord{}, err
	}
	r.ErrorMessage = msg.String
	r.Error = recordError(msg.String, model.Code(code.String))
	r.FilesCompleted = int(completed.Int64)
	r.FilesTotal = int(total.Int64)
	r.BytesDone, r.BytesTotal = bytesDone.Int64, bytesTotal.Int64
	r.StartedAt = started.Time
	if done.Valid {
		t := done.Time
		r.CompletedAt = &t
		secs := int64(max(0, t.Sub(r.StartedAt).Round(time.Second)/time.Second))
		r.DurationSeconds = &secs
	}
	return r, nil
}

// recordError is a row's failure as a code and a sentence. An interrupted
// download is stored as the bare word; it reads as the sentence downloads
// carry.
func recordError(msg string, code model.Code) *model.Error {
	if msg == string(model.CodeInterrupted) && (code == "" || code == model.CodeInterrupted) {
		return &model.Error{Code: model.CodeInterrupted, Message: model.InterruptedMessage}
	}
	if msg == "" && code == "" {
		return nil
	}
	return &model.Error{Code: code, Message: msg}
}

const sqlMarkInterrupted = `UPDATE download_history
SET status = ?, error_message = ?, error_code = ?, completed_at = ?
WHERE status = ?
RETURNING id, preset_id, kind, status, error_message, error_code, files_completed, files_total,
          bytes_done, bytes_total, started_at, completed_at`

// MarkInterrupted fails every download still "downloading", with the error
// message "interrupted" (the code, as every interrupted row keeps): at startup those
// are the ones the previous process did not finish (they are not resumed).
// It returns the rows it changed, oldest first, so the caller can say so in
// the activity log.
func (s *Store) MarkInterrupted(ctx context.Context) ([]model.DownloadRecord, error) {
	now := formatTime(s.now())
	var out []model.DownloadRecord
	err := s.write(ctx, func(tx *sql.Tx) error {
		out = out[:0] // a retried transaction starts over
		rows, err := tx.QueryContext(ctx, sqlMarkInterrupted, model.DownloadFailed, model.CodeInterrupted, model.CodeInterrupted, now, model.DownloadRunning)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanDownload(rows)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("mark interrupted downloads: %w", err)
	}
	slices.SortFunc(out, func(a, b model.DownloadRecord) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

func errNoDownload(id int64) *model.Error {
	return model.Errorf(model.CodeNotFound, "There is no download %d.", id)
}
