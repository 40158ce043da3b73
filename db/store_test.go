package db

import (
	"context"
	"dashboard/model"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
)

func TestOpenCreatesSchemaAndDefaults(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()

	// Column names and declared types exactly as the design (and API.md) name them.
	want := map[string][]string{
		"settings": {"key TEXT", "value TEXT", "updated_at TIMESTAMP"},
		"activity": {"id INTEGER", "type TEXT", "status TEXT", "title TEXT", "subtitle TEXT",
			"details JSON", "created_at TIMESTAMP"},
		"download_history": {"id INTEGER", "preset_id TEXT", "status TEXT", "error_message TEXT",
			"files_completed INTEGER", "files_total INTEGER", "started_at TIMESTAMP", "completed_at TIMESTAMP",
			"bytes_done INTEGER", "bytes_total INTEGER", "error_code TEXT", "kind TEXT"},
		"comfyui_prompts": {"prompt_id TEXT", "status TEXT", "updated_at TEXT"},
	}
	for table, cols := range want {
		rows, err := s.cur.db.QueryContext(ctx, `SELECT name, type FROM pragma_table_info(?) ORDER BY cid`, table)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				t.Fatal(err)
			}
			got = append(got, name+" "+typ)
		}
		rows.Close()
		if !slices.Equal(got, cols) {
			t.Errorf("table %s columns = %v, want %v", table, got, cols)
		}
	}
	for _, idx := range []string{"idx_activity_created", "idx_activity_type"} {
		if n := queryString(t, s.cur.db, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, idx); n != "1" {
			t.Errorf("index %s missing", idx)
		}
	}
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		t.Fatal(err)
	}
	if v := queryString(t, s.cur.db, `PRAGMA user_version`); v != fmt.Sprint(len(ms)) {
		t.Errorf("user_version = %s, want %d", v, len(ms))
	}
	got, err := s.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["theme"] != "dark" || got["activity_retention_days"] != "30" || len(got) != 2 {
		t.Errorf("default settings = %v", got)
	}
	if fk := queryString(t, s.cur.db, `PRAGMA foreign_keys`); fk != "1" {
		t.Errorf("foreign_keys = %s, want 1", fk)
	}
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	ms, err := loadMigrations(migrationFiles)
	if err != nil || len(ms) < 3 {
		t.Fatalf("embedded migrations = %v, %v", ms, err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Fatalf("migration %s has version %d, want %d", m.name, m.version, i+1)
		}
	}
	dir := filepath.Join(t.TempDir(), "m")
	if err := os.MkdirAll(filepath.Join(dir, "migrations"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0001_a.sql", "0003_c.sql"} {
		os.WriteFile(filepath.Join(dir, "migrations", name), []byte("SELECT 1;"), 0o644)
	}
	gap := os.DirFS(dir)
	if _, err := loadMigrations(gap); err == nil || !strings.Contains(err.Error(), "expected version 2") {
		t.Errorf("gap: err = %v", err)
	}
}

func TestReopenIsIdempotentAndKeepsUserSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dashboard.db")
	s, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSettings(ctx, map[string]string{"theme": "light", "hf_token": "secret"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSetting(ctx, "activity_retention_days"); err != nil {
		t.Fatal(err)
	}
	a, err := s.InsertActivity(ctx, model.Activity{Type: model.ActivityGeneration, Status: model.ActivityCompleted, Title: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	for range 2 {
		logs := &logBuffer{}
		s, err = Open(ctx, path, Options{Logger: logs.Logger()})
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		got, _ := s.Settings(ctx)
		// theme stays what the user chose; the deleted default comes back.
		if got["theme"] != "light" || got["hf_token"] != "secret" || got["activity_retention_days"] != "30" {
			t.Errorf("settings after reopen = %v", got)
		}
		if n := logs.Count("applied database migration"); n != 0 {
			t.Errorf("reopen applied %d migrations", n)
		}
		list, _ := s.ListActivity(ctx, model.ActivityFilter{})
		if len(list) != 1 || list[0].ID != a.ID {
			t.Errorf("activity after reopen = %v", list)
		}
		s.Close()
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dashboard.db")
	s, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawDB(t, path, time.Second).Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	ms, lerr := loadMigrations(migrationFiles)
	if lerr != nil {
		t.Fatal(lerr)
	}
	_, err = Open(ctx, path, Options{Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "schema version 99") || !strings.Contains(err.Error(), fmt.Sprintf("only knows up to %d", len(ms))) {
		t.Fatalf("err = %v, want a schema-version error", err)
	}
}

// A dashboard.db written by the earlier Python dashboard has the design's
// tables, CURRENT_TIMESTAMP dates and user_version 0.
func TestOpenAdoptsLegacyDatabase(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dashboard.db")
	raw := rawDB(t, path, time.Second)
	_, err := raw.Exec(`
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT, updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
CREATE TABLE activity (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, status TEXT NOT NULL,
  title TEXT, subtitle TEXT, details JSON, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP);
INSERT INTO settings (key, value) VALUES ('theme', 'light');
INSERT INTO activity (type, status, title, created_at) VALUES ('download', 'completed', 'old', '2026-02-20 09:08:07');`)
	if err != nil {
		t.Fatal(err)
	}
	raw.Close()

	s, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _, _ := s.Setting(ctx, "theme"); v != "light" {
		t.Errorf("theme = %q, want the legacy value", v)
	}
	list, err := s.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if want := time.Date(2026, 2, 20, 9, 8, 7, 0, time.UTC); !list[0].CreatedAt.Equal(want) {
		t.Errorf("legacy created_at = %v, want %v", list[0].CreatedAt, want)
	}
	if _, err := s.StartDownload(ctx, "FLUX", 1); err != nil {
		t.Errorf("download_history missing after adopting: %v", err)
	}
}

func TestFileModes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	s, path, _ := openTest(t, Options{})
	if _, err := s.InsertActivity(ctx, model.Activity{Type: model.ActivityError, Status: model.ActivityFailed}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %v, want 0600", filepath.Base(p), fi.Mode().Perm())
		}
	}

	// A file an older tool created world-readable is tightened, and the
	// folder around it is left alone.
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o644) // in case the umask took bits away
	s2, err := Open(ctx, old, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, p := range []string{old, old + "-wal", old + "-shm"} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, err %v; want 0600", filepath.Base(p), fi.Mode().Perm(), err)
		}
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o750 {
		t.Errorf("folder mode changed to %v", fi.Mode().Perm())
	}
}

func TestOpenDirectoryAtPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard.db")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("err = %v, want one naming %s as a directory", err, path)
	}
}

func TestOpenMissingFolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "such", "dashboard.db")
	_, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want one naming %s", err, path)
	}
}

// Characters that mean something in a URI must still name the right file.
func TestOpenAwkwardPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?c#d%e&f+g")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "dash board.db")
	s, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %s: %v", path, err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("-wal next to the database: %v (mode %v)", err, fi)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestJournalModeFallback(t *testing.T) {
	for _, tc := range []struct {
		vfs      string
		want     string
		sqlite   string // what PRAGMA journal_mode says
		warnings int
	}{
		{vfs: "", want: "wal", sqlite: "wal"},
		{vfs: "dbtest-noshm", want: "wal-exclusive", sqlite: "wal", warnings: 1},
		{vfs: "dbtest-nowal", want: "delete", sqlite: "delete", warnings: 1},
	} {
		t.Run(tc.want, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "dashboard.db")
			for round := range 2 { // and again on the file the first round made
				logs := &logBuffer{}
				s, err := Open(ctx, path, Options{Logger: logs.Logger(), vfs: tc.vfs})
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				if got := s.JournalMode(); got != tc.want {
					t.Errorf("JournalMode() = %q, want %q", got, tc.want)
				}
				if got := queryString(t, s.cur.db, `PRAGMA journal_mode`); got != tc.sqlite {
					t.Errorf("PRAGMA journal_mode = %q, want %q", got, tc.sqlite)
				}
				if got := logs.Count("WAL journal not available on this filesystem; using fallback"); got != tc.warnings {
					t.Errorf("fallback warnings = %d, want %d\n%s", got, tc.warnings, logs)
				}
				// The store works in every mode, including with the single
				// connection of wal-exclusive.
				a, err := s.InsertActivity(ctx, model.Activity{Type: model.ActivityDownload, Status: model.ActivityStarted})
				if err != nil {
					t.Fatal(err)
				}
				if err := s.SetSettings(ctx, map[string]string{"theme": "light"}); err != nil {
					t.Fatal(err)
				}
				list, err := s.ListActivity(ctx, model.ActivityFilter{})
				if err != nil || len(list) != round+1 || list[0].ID != a.ID {
					t.Errorf("list = %v, %v", list, err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			// The scratch databases used to probe the modes are gone.
			entries, _ := os.ReadDir(filepath.Dir(path))
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), "dashboard.db") || strings.Contains(e.Name(), "walcheck") {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

// BEGIN IMMEDIATE: the write lock is taken when the transaction begins, not
// at its first write.
func TestWriteTransactionLocksAtBegin(t *testing.T) {
	s, path, _ := openTest(t, Options{})
	ctx := context.Background()
	other, err := rawDB(t, path, 0).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tryLock := func() error {
		_, err := other.ExecContext(ctx, `BEGIN IMMEDIATE`)
		if err == nil {
			other.ExecContext(ctx, `ROLLBACK`)
		}
		return err
	}

	// Control: a deferred transaction that has not written leaves the lock free,
	// so the check below can tell the two apart.
	deferred, err := s.cur.db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deferred.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
		t.Fatal(err)
	}
	if err := tryLock(); err != nil {
		t.Fatalf("deferred transaction already holds the lock: %v", err)
	}
	deferred.ExecContext(ctx, `ROLLBACK`)
	deferred.Close()

	var inside error
	err = s.write(ctx, func(*sql.Tx) error {
		inside = tryLock() // before the transaction has run a single statement
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(inside, sqlite3.BUSY) {
		t.Fatalf("another connection's BEGIN IMMEDIATE during our transaction: %v, want SQLITE_BUSY", inside)
	}
	// The same holds for the store's own pool: BeginTx uses _txlock=immediate.
	tx, err := s.cur.db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if err := tryLock(); !errors.Is(err, sqlite3.BUSY) {
		t.Fatalf("BeginTx did not take the write lock: %v", err)
	}
}

func TestPing(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func TestURIEscape(t *testing.T) {
	for in, want := range map[string]string{
		"/workspace/data/dashboard.db": "/workspace/data/dashboard.db",
		"/a b/c?d#e":                   "/a%20b/c%3Fd%23e",
		"/x%y&z+w=v":                   "/x%25y%26z%2Bw%3Dv",
	} {
		if got := uriEscape(in); got != want {
			t.Errorf("uriEscape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBuildDSN(t *testing.T) {
	opts := Options{busyTimeout: defaultBusyTimeout}
	for _, tc := range []struct{ mode, want string }{
		{journalWAL, "file:/w/d.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(wal)&_pragma=foreign_keys(1)&_txlock=immediate&modeof=/w/d.db"},
		{journalWALExclusive, "file:/w/d.db?_pragma=busy_timeout(5000)&_pragma=locking_mode(exclusive)&_pragma=journal_mode(wal)&_pragma=foreign_keys(1)&_txlock=immediate&modeof=/w/d.db"},
		{journalDelete, "file:/w/d.db?_pragma=busy_timeout(5000)&_pragma=journal_mode(delete)&_pragma=synchronous(full)&_pragma=foreign_keys(1)&_txlock=immediate&modeof=/w/d.db"},
	} {
		if got := buildDSN("/w/d.db", tc.mode, opts); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.mode, got, tc.want)
		}
	}
}
