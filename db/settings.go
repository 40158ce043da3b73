package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
)

const sqlSelectSetting = `SELECT value FROM settings WHERE key = ?`

// Setting returns one setting; ok is false when the key is absent.
func (s *Store) Setting(ctx context.Context, key string) (value string, ok bool, err error) {
	var v sql.NullString
	db, done := s.reader()
	defer done()
	err = db.QueryRowContext(ctx, sqlSelectSetting, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read setting %s: %w", key, err)
	}
	return v.String, true, nil
}

const sqlSelectSettings = `SELECT key, value FROM settings`

// Settings returns every setting.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	db, done := s.reader()
	defer done()
	rows, err := db.QueryContext(ctx, sqlSelectSettings)
	if err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k string
		var v sql.NullString
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("read settings: %w", err)
		}
		out[k] = v.String
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return out, nil
}

const sqlUpsertSetting = `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`

// SetSettings writes every pair in one transaction: all of them or none.
func (s *Store) SetSettings(ctx context.Context, kv map[string]string) error {
	if len(kv) == 0 {
		return nil
	}
	if _, ok := kv[""]; ok {
		return fmt.Errorf("save settings: empty key")
	}
	// Sorted so the writes (and any failure part-way) are reproducible.
	keys := slices.Sorted(maps.Keys(kv))
	now := formatTime(s.now())
	err := s.write(ctx, func(tx *sql.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, sqlUpsertSetting, k, kv[k], now); err != nil {
				return fmt.Errorf("setting %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}

const sqlDeleteSetting = `DELETE FROM settings WHERE key = ?`

// DeleteSetting removes a setting; removing an absent one is not an error.
func (s *Store) DeleteSetting(ctx context.Context, key string) error {
	err := s.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, sqlDeleteSetting, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete setting %s: %w", key, err)
	}
	return nil
}
