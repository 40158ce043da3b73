package db

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
	"github.com/ncruces/go-sqlite3/vfs"
)

func TestMain(m *testing.M) {
	// Stand-ins for filesystems where WAL does not work: "dbtest-noshm" has
	// no shared memory (WAL only with exclusive locking), "dbtest-nowal"
	// also cannot create -wal files (no WAL at all).
	vfs.Register("dbtest-noshm", testVFS{})
	vfs.Register("dbtest-nowal", testVFS{refuseWAL: true})
	// "dbtest-full" fails every write with diskFull's error while it is set:
	// a disk or quota that is full, without filling a real one.
	vfs.Register("dbtest-full", testVFS{full: &diskFull})
	os.Exit(m.Run())
}

// diskFull is the error every write to a dbtest-full file fails with; nil
// lets writes through.
var diskFull atomic.Pointer[error]

type testVFS struct {
	refuseWAL bool
	full      *atomic.Pointer[error]
}

func (v testVFS) base() vfs.VFSFilename { return vfs.Find("").(vfs.VFSFilename) }

func (v testVFS) Open(name string, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	f, fl, err := v.base().Open(name, flags)
	if err != nil {
		return nil, fl, err
	}
	return plainFile{f}, fl, nil
}

func (v testVFS) OpenFilename(name *vfs.Filename, flags vfs.OpenFlag) (vfs.File, vfs.OpenFlag, error) {
	if v.refuseWAL && flags&vfs.OPEN_WAL != 0 {
		return nil, flags, sqlite3.CANTOPEN
	}
	f, fl, err := v.base().OpenFilename(name, flags)
	if err != nil {
		return nil, fl, err
	}
	if v.full != nil {
		return fullFile{plainFile{f}, v.full}, fl, nil
	}
	return plainFile{f}, fl, nil
}

func (v testVFS) Delete(name string, syncDir bool) error { return v.base().Delete(name, syncDir) }
func (v testVFS) Access(name string, flags vfs.AccessFlag) (bool, error) {
	return v.base().Access(name, flags)
}
func (v testVFS) FullPathname(name string) (string, error) { return v.base().FullPathname(name) }

// plainFile hides every optional interface of the wrapped file, shared
// memory included.
type plainFile struct{ vfs.File }

// fullFile fails writes with the error full points at, the way the
// driver's own VFS reports ENOSPC (SQLITE_FULL) and EDQUOT (an I/O error).
type fullFile struct {
	plainFile
	full *atomic.Pointer[error]
}

func (f fullFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.full.Load(); err != nil {
		return 0, *err
	}
	return f.plainFile.WriteAt(p, off)
}

// testClock is a settable clock safe for concurrent use.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *testClock { return &testClock{t: t} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// logBuffer collects log output so tests can look for a record.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (l *logBuffer) Count(msg string) int {
	return strings.Count(l.String(), "msg=\""+msg+"\"")
}

// openTest opens a store in a temp dir with a fixed clock and a captured log.
func openTest(t *testing.T, opts Options) (*Store, string, *logBuffer) {
	t.Helper()
	path := t.TempDir() + "/dashboard.db"
	logs := &logBuffer{}
	if opts.Logger == nil {
		opts.Logger = logs.Logger()
	}
	if opts.Now == nil {
		opts.Now = newClock(time.Date(2026, 11, 27, 10, 27, 31, 0, time.UTC)).Now
	}
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path, logs
}

// rawDB opens path without the store, the way another tool or process would.
func rawDB(t *testing.T, path string, busyTimeout time.Duration) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)", path, busyTimeout.Milliseconds()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// holdWriteLock takes the write lock on path from a separate connection and
// returns a function that releases it.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := rawDB(t, path, 0).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatalf("take write lock: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			conn.ExecContext(ctx, `ROLLBACK`)
			conn.Close()
		})
	}
	t.Cleanup(release)
	return release
}

func queryString(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	var s string
	if err := db.QueryRow(q, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func sqlOpenRaw(path string) (*sql.DB, error) {
	return sql.Open("sqlite3", "file:"+path+"?_pragma=busy_timeout(5000)")
}
