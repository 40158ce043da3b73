package db

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// The child is SIGKILLed in the middle of its insert loop. Every id it
// reported as committed must survive, and the file must be intact.
func TestCrashMidWriteKeepsCommittedRows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard.db")
	child := startHelper(t, "writer", path)
	var ids []string
	for len(ids) < 200 {
		ids = append(ids, child.readLine(t))
	}
	if err := child.cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	for child.lines.Scan() { // lines already in the pipe were committed too
		ids = append(ids, child.lines.Text())
	}
	err := child.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.Success() {
		t.Fatalf("child was not killed: %v", err)
	}

	raw := rawDB(t, path, time.Second)
	if got := queryString(t, raw, `PRAGMA integrity_check`); got != "ok" {
		t.Fatalf("integrity_check = %q", got)
	}
	for _, id := range ids {
		if n := queryString(t, raw, `SELECT count(*) FROM activity WHERE id = ?`, id); n != "1" {
			t.Errorf("committed id %s is missing", id)
		}
	}
	raw.Close()

	s, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Recovered() != "" {
		t.Errorf("database was treated as corrupt: %s", s.Recovered())
	}
	t.Logf("child committed %d reported rows before SIGKILL", len(ids))
}
