package db

import (
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"

	"dashboard/model"
)

func act(title string) model.Activity {
	return model.Activity{Type: model.ActivityDownload, Status: model.ActivityCompleted, Title: title}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// A read-only store reads what the writer wrote, live, and refuses every
// write with read_only without touching the file.
func TestReadOnlyStoreReadsAndRefusesWrites(t *testing.T) {
	ctx := context.Background()
	w, path, _ := openTest(t, Options{})
	if _, err := w.InsertActivity(ctx, act("first")); err != nil {
		t.Fatal(err)
	}
	r, err := Open(ctx, path, Options{Logger: quietLogger(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if !r.ReadOnly() || w.ReadOnly() {
		t.Fatalf("ReadOnly() = %v (reader), %v (writer)", r.ReadOnly(), w.ReadOnly())
	}
	if _, err := w.InsertActivity(ctx, act("second")); err != nil {
		t.Fatal(err)
	}
	list, err := r.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(list) != 2 || list[0].Title != "second" {
		t.Fatalf("reader sees %v, %v", list, err)
	}
	if _, ok, err := r.Setting(ctx, model.SettingTheme); !ok || err != nil {
		t.Fatalf("reader's setting: %v %v", ok, err)
	}

	// The writer closes, so nothing but the reader could change the file now.
	w.Close()
	before := fileSum(t, path)
	for name, write := range map[string]func() error{
		"insert":   func() error { _, err := r.InsertActivity(ctx, act("refused")); return err },
		"settings": func() error { return r.SetSettings(ctx, map[string]string{"theme": "light"}) },
		"clear":    func() error { _, err := r.ClearActivity(ctx); return err },
		"download": func() error { _, err := r.StartDownload(ctx, "X", 1); return err },
		"prompt":   func() error { return r.SetPromptStatus(ctx, "p", model.ActivityStarted) },
	} {
		if err := write(); model.ErrorCode(err) != model.CodeReadOnly {
			t.Errorf("%s on a read-only store: %v, want read_only", name, err)
		}
	}
	if fileSum(t, path) != before {
		t.Error("the read-only store changed the database file")
	}
	if st, err := r.Health(ctx); st != model.DBOK {
		t.Errorf("read-only health = %s %v", st, err)
	}
}

// The guard is asked before every write, and its answer is the error.
func TestGuardRefusesWrites(t *testing.T) {
	ctx := context.Background()
	var mu sync.Mutex
	var refuse error
	s, _, _ := openTest(t, Options{Guard: func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		return refuse
	}})
	if _, err := s.InsertActivity(ctx, act("allowed")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	refuse = model.ReadOnlyError("pod-a")
	mu.Unlock()
	_, err := s.InsertActivity(ctx, act("refused"))
	if model.ErrorCode(err) != model.CodeReadOnly || !strings.Contains(model.AsError(err).Message, "pod-a") {
		t.Fatalf("write with the lease lost: %v", err)
	}
	list, _ := s.ListActivity(ctx, model.ActivityFilter{})
	if len(list) != 1 {
		t.Fatalf("rows = %v, want only the allowed one", list)
	}
}

// Promote and Demote swap the pool under running readers; writes follow.
func TestPromoteAndDemote(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "data", "dashboard.db")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// Read-only before anyone has created the database: reads fail, the
	// store is still there, and no file is made.
	s, err := Open(ctx, path, Options{Logger: quietLogger(), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ListActivity(ctx, model.ActivityFilter{}); err == nil {
		t.Error("a read-only store read a database that does not exist")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the read-only store created the file: %v", err)
	}

	stop := make(chan struct{})
	var promoted atomic.Bool
	var readers sync.WaitGroup
	readErrs := make(chan error, 100)
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Before the first Promote the file may not be a database
				// yet; from then on every read must work.
				ro := s.ReadOnly() && !promoted.Load()
				if _, err := s.Settings(ctx); err != nil && !ro {
					select {
					case readErrs <- err:
					default:
					}
				}
			}
		}()
	}

	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted.Store(true)
	if s.ReadOnly() || s.JournalMode() != journalWAL {
		t.Fatalf("after Promote: read-only %v, journal %q", s.ReadOnly(), s.JournalMode())
	}
	if _, err := s.InsertActivity(ctx, act("as writer")); err != nil {
		t.Fatal(err)
	}
	if err := s.Demote(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.ReadOnly() || !strings.HasPrefix(s.JournalMode(), "read-only") {
		t.Fatalf("after Demote: read-only %v, journal %q", s.ReadOnly(), s.JournalMode())
	}
	if _, err := s.InsertActivity(ctx, act("refused")); model.ErrorCode(err) != model.CodeReadOnly {
		t.Fatalf("write after Demote: %v", err)
	}
	list, err := s.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(list) != 1 || list[0].Title != "as writer" {
		t.Fatalf("after Demote: %v %v", list, err)
	}
	if err := s.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.InsertActivity(ctx, act("writer again")); err != nil {
		t.Fatal(err)
	}
	close(stop)
	readers.Wait()
	select {
	case err := <-readErrs:
		t.Fatalf("a read failed while the pool was swapped: %v", err)
	default:
	}
}

// A write the disk or quota refuses is a disk_full error; nothing of it is
// kept, health says disk_full, and both clear once space is back.
func TestDiskFull(t *testing.T) {
	for name, errno := range map[string]syscall.Errno{"ENOSPC": syscall.ENOSPC, "EDQUOT": syscall.EDQUOT} {
		// What the driver's VFS makes of each: ENOSPC is SQLITE_FULL, EDQUOT
		// just a write error.
		cause := vfs.SystemError(errno, sqlite3.FULL)
		if errno == syscall.EDQUOT {
			cause = vfs.SystemError(errno, sqlite3.IOERR_WRITE)
		}
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			// The quota's EDQUOT reaches the store as a bare I/O error; the
			// store then asks the filesystem, which here says what the
			// test's disk says.
			space := func(string) error {
				if e := diskFull.Load(); e != nil {
					return &os.PathError{Op: "write", Path: "probe", Err: errno}
				}
				return nil
			}
			s, path, logs := openTest(t, Options{Journal: JournalDelete, vfs: "dbtest-full", spaceLeft: space})
			if _, err := s.InsertActivity(ctx, act("before")); err != nil {
				t.Fatal(err)
			}
			if st, _ := s.Health(ctx); st != model.DBOK {
				t.Fatalf("health before = %s", st)
			}
			diskFull.Store(&cause)
			t.Cleanup(func() { diskFull.Store(nil) })

			big := act("too big")
			big.Details = []byte(`{"blob":"` + strings.Repeat("x", 32<<10) + `"}`)
			_, err := s.InsertActivity(ctx, big)
			e := model.AsError(err)
			if e == nil || e.Code != model.CodeDiskFull || !strings.Contains(e.Message, "Free some space") {
				t.Fatalf("insert on a full disk: %v", err)
			}
			if err := s.SetSettings(ctx, map[string]string{"theme": "light", "activity_retention_days": "7"}); model.ErrorCode(err) != model.CodeDiskFull {
				t.Fatalf("settings on a full disk: %v", err)
			}
			if st, _ := s.Health(ctx); st != model.DBDiskFull {
				t.Errorf("health while full = %s", st)
			}
			if n := logs.Count("database write refused: disk or quota full"); n != 1 {
				t.Errorf("disk full logged %d times, want once", n)
			}

			// Nothing half-written: neither the row nor either setting.
			raw := rawDB(t, path, 0)
			if got := queryString(t, raw, `PRAGMA integrity_check`); got != "ok" {
				t.Fatalf("integrity_check = %q", got)
			}
			if n := queryString(t, raw, `SELECT count(*) FROM activity`); n != "1" {
				t.Errorf("activity rows = %s, want the one from before", n)
			}
			if v := queryString(t, raw, `SELECT value FROM settings WHERE key = 'theme'`); v != "dark" {
				t.Errorf("theme = %s: half of a refused write was kept", v)
			}
			raw.Close()

			diskFull.Store(nil)
			// Health finds out by itself that space is back.
			if st, err := s.Health(ctx); st != model.DBOK {
				t.Fatalf("health after space was freed = %s %v", st, err)
			}
			if _, err := s.InsertActivity(ctx, big); err != nil {
				t.Fatalf("insert after space was freed: %v", err)
			}
		})
	}
}

// A database file deleted or replaced under the store is noticed: writes
// are refused with a sentence saying so, health says error, the log says
// it once.
func TestDatabaseFileReplacedOrDeleted(t *testing.T) {
	for _, how := range []string{"replaced", "deleted"} {
		t.Run(how, func(t *testing.T) {
			ctx := context.Background()
			s, path, logs := openTest(t, Options{})
			if _, err := s.InsertActivity(ctx, act("before")); err != nil {
				t.Fatal(err)
			}
			if how == "replaced" {
				other := filepath.Join(t.TempDir(), "other.db")
				fillDatabase(t, other, 3)
				if err := os.Rename(other, path); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				_, err := s.InsertActivity(ctx, act("lost"))
				e := model.AsError(err)
				if e == nil || e.Code != model.CodeDatabaseUnavailable || !strings.Contains(e.Message, "deleted or replaced") {
					t.Fatalf("write after the file was %s: %v", how, err)
				}
				if st, _ := s.Health(ctx); st != model.DBError {
					t.Errorf("health = %s, want error", st)
				}
			}
			if n := logs.Count("database file deleted or replaced under the running dashboard; nothing more is saved until it restarts"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs)
			}
			if how == "replaced" {
				// The file now at the path is untouched.
				raw := rawDB(t, path, 0)
				if n := queryString(t, raw, `SELECT count(*) FROM activity WHERE title = 'lost'`); n != "0" {
					t.Error("a refused write reached the new file")
				}
			}
		})
	}
}

// The file's identity check is not fooled by a file rewritten in place.
func TestDatabaseIdentitySurvivesOwnWrites(t *testing.T) {
	ctx := context.Background()
	s, _, _ := openTest(t, Options{Journal: JournalDelete})
	for i := range 20 {
		if _, err := s.InsertActivity(ctx, act("row")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if _, err := s.CleanupActivity(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Health(ctx); st != model.DBOK {
		t.Fatalf("health = %s %v", st, err)
	}
}
