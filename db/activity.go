package db

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"dashboard/model"
)

// Page sizes for the list methods.
const (
	defaultListLimit = 50
	maxListLimit     = 500
)

// maxDeleteBatch bounds how many rows one retention transaction deletes, so
// the write lock is never held for long and readers keep up.
const maxDeleteBatch = 5000

func listLimit(n int) int {
	if n <= 0 {
		return defaultListLimit
	}
	return min(n, maxListLimit)
}

const sqlInsertActivity = `INSERT INTO activity (type, status, title, subtitle, details, created_at)
VALUES (?, ?, ?, ?, ?, ?)`

// InsertActivity stores a and returns it with ID and CreatedAt set. Details
// that are nil, empty or JSON null are stored as NULL (and returned as nil).
// The activity package has checked the type and status.
func (s *Store) InsertActivity(ctx context.Context, a model.Activity) (model.Activity, error) {
	var details any // nil binds NULL
	if d := bytes.TrimSpace(a.Details); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if !json.Valid(d) {
			return model.Activity{}, fmt.Errorf("insert activity: details are not valid JSON")
		}
		// Bound as a string so SQLite stores TEXT, which its JSON functions read.
		details = string(d)
		a.Details = json.RawMessage(d)
	} else {
		a.Details = nil
	}
	created := s.now().UTC().Truncate(time.Millisecond)
	var id int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlInsertActivity,
			a.Type, a.Status, a.Title, a.Subtitle, details, formatTime(created))
		if err != nil {
			return err
		}
		id, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return model.Activity{}, fmt.Errorf("insert activity: %w", err)
	}
	a.ID = id
	a.CreatedAt = created
	return a, nil
}

// The list query is assembled from these fixed pieces; only the filters
// present are added. Every filter the API offers has an index ending in the
// rowid (idx_activity_type, idx_activity_status, idx_activity_type_status),
// so a page walks just its rows, newest first, however few rows match.
const (
	sqlListActivity       = `SELECT id, type, status, title, subtitle, details, created_at FROM activity`
	sqlListActivityType   = `type = ?`
	sqlListActivityStatus = `status = ?`
	sqlListActivityBefore = `id < ?`
	sqlListActivityOrder  = ` ORDER BY id DESC LIMIT ?`
)

// ListActivity returns activity newest first (id DESC), filtered by f.
func (s *Store) ListActivity(ctx context.Context, f model.ActivityFilter) ([]model.Activity, error) {
	q, args := listActivityQuery(f)
	db, done := s.reader()
	defer done()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	defer rows.Close()
	out := []model.Activity{}
	for rows.Next() {
		var a model.Activity
		var title, subtitle, details sql.NullString
		var created dbTime
		if err := rows.Scan(&a.ID, &a.Type, &a.Status, &title, &subtitle, &details, &created); err != nil {
			return nil, fmt.Errorf("list activity: %w", err)
		}
		a.Title, a.Subtitle, a.CreatedAt = title.String, subtitle.String, created.Time
		if details.Valid && details.String != "" {
			a.Details = json.RawMessage(details.String)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list activity: %w", err)
	}
	return out, nil
}

// listActivityQuery is the query ListActivity runs for f, and its arguments.
func listActivityQuery(f model.ActivityFilter) (string, []any) {
	var where []string
	var args []any
	if f.Type != "" {
		where = append(where, sqlListActivityType)
		args = append(args, f.Type)
	}
	if f.Status != "" {
		where = append(where, sqlListActivityStatus)
		args = append(args, f.Status)
	}
	if f.Before > 0 {
		where = append(where, sqlListActivityBefore)
		args = append(args, f.Before)
	}
	q := sqlListActivity
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += sqlListActivityOrder
	return q, append(args, listLimit(f.Limit))
}

const sqlClearActivity = `DELETE FROM activity`

// ClearActivity deletes all activity and returns how many rows went.
func (s *Store) ClearActivity(ctx context.Context) (int64, error) {
	var n int64
	err := s.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, sqlClearActivity)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("clear activity: %w", err)
	}
	return n, nil
}

// The subquery walks idx_activity_created and stops after the batch.
const sqlDeleteActivityBatch = `DELETE FROM activity WHERE id IN
(SELECT id FROM activity WHERE created_at < ? LIMIT ?)`

// DeleteActivityBefore deletes activity created before cutoff, at most 5,000
// rows per short write transaction, and returns how many rows went.
func (s *Store) DeleteActivityBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	return s.deleteInBatches(ctx, sqlDeleteActivityBatch, formatTime(cutoff), maxDeleteBatch)
}

func (s *Store) deleteInBatches(ctx context.Context, query, cutoff string, batch int) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.write(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, query, cutoff, batch)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete old activity: %w", err)
		}
		total += n
		if n > 0 {
			s.log.Debug("deleted old activity batch", "rows", n, "total", total)
		}
		if n < int64(batch) {
			return total, nil
		}
	}
}

// CleanupActivity deletes activity older than retentionDays (counted back
// from Now). The retention job calls it at startup and daily.
func (s *Store) CleanupActivity(ctx context.Context, retentionDays int) (int64, error) {
	if retentionDays <= 0 {
		return 0, fmt.Errorf("clean up activity: retention must be at least one day, got %d", retentionDays)
	}
	cutoff := s.now().Add(-time.Duration(retentionDays) * 24 * time.Hour)
	return s.DeleteActivityBefore(ctx, cutoff)
}
