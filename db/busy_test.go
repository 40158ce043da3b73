package db

import (
	"bufio"
	"context"
	"dashboard/model"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ncruces/go-sqlite3"
)

func TestBackoff(t *testing.T) {
	for _, tc := range []struct{ in, want time.Duration }{
		{25 * time.Millisecond, 50 * time.Millisecond},
		{400 * time.Millisecond, 800 * time.Millisecond},
		{800 * time.Millisecond, time.Second},
		{time.Second, time.Second},
	} {
		if got := nextBackoff(tc.in); got != tc.want {
			t.Errorf("nextBackoff(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	seen := map[time.Duration]bool{}
	for range 1000 {
		d := jitter(100 * time.Millisecond)
		if d < 50*time.Millisecond || d > 100*time.Millisecond {
			t.Fatalf("jitter(100ms) = %v, outside [50ms, 100ms]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("jitter is not jittery: %d distinct values", len(seen))
	}
}

// Another connection holds the write lock for 2 s while we write. With the
// production busy_timeout SQLite's busy handler waits it out; with a short
// busy_timeout the retry loop has to.
func TestWriteWaitsForLockHeldByAnotherConnection(t *testing.T) {
	for _, tc := range []struct {
		name        string
		busyTimeout time.Duration
		wantRetries bool
	}{
		{"busy_timeout", 0, false},
		{"retry", 100 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, path, logs := openTest(t, Options{busyTimeout: tc.busyTimeout})
			release := holdWriteLock(t, path)
			timer := time.AfterFunc(2*time.Second, release)
			defer timer.Stop()

			start := time.Now()
			a, err := s.InsertActivity(context.Background(), model.Activity{Type: model.ActivityDownload, Status: model.ActivityStarted})
			took := time.Since(start)
			if err != nil {
				t.Fatalf("write failed after %v: %v", took, err)
			}
			if took < 1500*time.Millisecond {
				t.Errorf("write finished in %v; the lock was not held", took)
			}
			if got, _ := s.ListActivity(context.Background(), model.ActivityFilter{}); len(got) != 1 || got[0].ID != a.ID {
				t.Errorf("row not stored: %v", got)
			}
			if retried := logs.Count("database locked; retrying write") > 0; retried != tc.wantRetries {
				t.Errorf("retried = %v, want %v", retried, tc.wantRetries)
			}
		})
	}
}

// The same, with the lock held by another process.
func TestWriteWaitsForLockHeldByAnotherProcess(t *testing.T) {
	s, path, logs := openTest(t, Options{busyTimeout: 200 * time.Millisecond})
	child := startHelper(t, "lock", path, "DB_TEST_HOLD=2s")
	if line := child.readLine(t); line != "locked" {
		t.Fatalf("helper said %q", line)
	}

	start := time.Now()
	err := s.SetSettings(context.Background(), map[string]string{"theme": "light"})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("write failed after %v: %v", took, err)
	}
	if took < time.Second {
		t.Errorf("write finished in %v; the other process did not hold the lock", took)
	}
	if v, _, _ := s.Setting(context.Background(), "theme"); v != "light" {
		t.Errorf("theme = %q", v)
	}
	if logs.Count("database locked; retrying write") == 0 {
		t.Error("no retry logged")
	}
	child.wait(t)
}

func TestWriteGivesUpWithClearError(t *testing.T) {
	s, path, _ := openTest(t, Options{busyTimeout: 20 * time.Millisecond, BusyRetry: 300 * time.Millisecond})
	holdWriteLock(t, path) // until the test ends

	start := time.Now()
	_, err := s.InsertActivity(context.Background(), model.Activity{Type: model.ActivityError, Status: model.ActivityFailed})
	took := time.Since(start)
	if err == nil {
		t.Fatal("write succeeded while the lock was held")
	}
	if !strings.Contains(err.Error(), "database is locked by another process; gave up after 300ms") {
		t.Errorf("error = %q", err)
	}
	if !errors.Is(err, sqlite3.BUSY) {
		t.Errorf("error does not wrap SQLITE_BUSY: %v", err)
	}
	if took < 300*time.Millisecond || took > 5*time.Second {
		t.Errorf("gave up after %v, want about 300ms", took)
	}

	// A cancelled context stops the wait early.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.busyRetry = time.Minute
	start = time.Now()
	if _, err := s.InsertActivity(ctx, model.Activity{Type: model.ActivityError, Status: model.ActivityFailed}); err == nil {
		t.Fatal("write succeeded while the lock was held")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("cancelled write returned after %v", took)
	}
}

// helper is a child process running TestHelperProcess.
type helper struct {
	cmd   *exec.Cmd
	lines *bufio.Scanner
}

// startHelper re-executes the test binary as a helper process (see
// TestHelperProcess) doing role on the database at path.
func startHelper(t *testing.T, role, path string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v=false")
	cmd.Env = append(os.Environ(), "DB_TEST_HELPER="+role, "DB_TEST_PATH="+path)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &helper{cmd: cmd, lines: bufio.NewScanner(out)}
}

func (h *helper) readLine(t *testing.T) string {
	t.Helper()
	if !h.lines.Scan() {
		t.Fatalf("helper stopped: %v", h.lines.Err())
	}
	return h.lines.Text()
}

func (h *helper) wait(t *testing.T) {
	t.Helper()
	for h.lines.Scan() {
	}
	if err := h.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// TestHelperProcess is not a test: it is the body of the child processes
// the tests start, selected by DB_TEST_HELPER.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv("DB_TEST_HELPER")
	if role == "" {
		t.Skip("run as a helper process only")
	}
	path := os.Getenv("DB_TEST_PATH")
	var err error
	switch role {
	case "lock":
		err = helperHoldLock(path)
	case "writer":
		err = helperWrite(path)
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// helperHoldLock takes the write lock, says "locked", holds it for
// DB_TEST_HOLD and lets go.
func helperHoldLock(path string) error {
	hold, err := time.ParseDuration(os.Getenv("DB_TEST_HOLD"))
	if err != nil {
		return err
	}
	ctx := context.Background()
	db, err := sqlOpenRaw(path)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		return err
	}
	fmt.Println("locked")
	time.Sleep(hold)
	_, err = conn.ExecContext(ctx, `ROLLBACK`)
	return err
}

// helperWrite inserts activity through the store in a loop and prints each
// id once its transaction has committed, until killed (or a minute passes,
// so an orphan cannot run forever).
func helperWrite(path string) error {
	ctx := context.Background()
	s, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(time.Minute)
	for i := 0; time.Now().Before(deadline); i++ {
		a, err := s.InsertActivity(ctx, model.Activity{
			Type: model.ActivityGeneration, Status: model.ActivityCompleted,
			Title:    fmt.Sprintf("generation %d", i),
			Subtitle: strings.Repeat("x", 500), // spill onto new pages often
			Details:  []byte(fmt.Sprintf(`{"i":%d}`, i)),
		})
		if err != nil {
			return err
		}
		fmt.Println(a.ID)
	}
	return s.Close()
}
