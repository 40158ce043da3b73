package db

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"dashboard/model"
)

// migrationFiles holds the schema, one file per version: NNNN_name.sql.
// PRAGMA user_version records the last version applied.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads the embedded migrations in order and checks they are
// numbered 1, 2, 3… with no gap, so a bad file name fails every test run.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, name := range names {
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and '_'", base)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: expected version %d", m.name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations embedded")
	}
	return ms, nil
}

// defaultSettings are inserted when absent, on every Open; a value the user
// chose is never overwritten.
func defaultSettings() map[string]string {
	return map[string]string{
		model.SettingTheme:         model.DefaultTheme,
		model.SettingRetentionDays: strconv.Itoa(model.DefaultRetentionDays),
	}
}

const sqlInsertDefaultSetting = `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
ON CONFLICT(key) DO NOTHING`

// migrate applies pending migrations and the default settings in one write
// transaction on db, the pool being opened. The version is read inside that
// transaction so two processes opening a new file at once cannot both apply
// the same migration.
func (s *Store) migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	latest := ms[len(ms)-1].version
	var applied []string
	err = s.retryWrite(ctx, db, func(tx *sql.Tx) error {
		applied = applied[:0]
		var current int
		if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&current); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if current > latest {
			return fmt.Errorf("database %s has schema version %d but this dashboard only knows up to %d; run a newer dashboard or move the file away",
				s.path, current, latest)
		}
		for _, m := range ms[current:] {
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			applied = append(applied, m.name)
		}
		if current != latest {
			// PRAGMA takes no bound parameters; latest is our own integer.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, latest)); err != nil {
				return fmt.Errorf("set schema version: %w", err)
			}
		}
		now := formatTime(s.now())
		defaults := defaultSettings()
		for _, k := range slices.Sorted(maps.Keys(defaults)) {
			if _, err := tx.ExecContext(ctx, sqlInsertDefaultSetting, k, defaults[k], now); err != nil {
				return fmt.Errorf("insert default setting %s: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	for _, name := range applied {
		s.log.Info("applied database migration", "migration", name)
	}
	return nil
}
