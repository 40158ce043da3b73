package db

import (
	"bytes"
	"context"
	"dashboard/model"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var recoveryClock = time.Date(2026, 11, 27, 10, 27, 31, 0, time.UTC)

// fillDatabase makes a database at path with rows rows of activity and closes
// it, so everything is in the main file (the -wal is checkpointed away).
func fillDatabase(t *testing.T, path string, rows int) {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := s.cur.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		_, err := tx.Exec(sqlInsertActivity, model.ActivityDownload, model.ActivityCompleted, "row", strings.Repeat("s", 300),
			`{"n":1}`, formatTime(recoveryClock.Add(time.Duration(i)*time.Second)))
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("-wal still holds %d bytes after close", fi.Size())
	}
}

// checkRecovered opens the damaged database at path and checks it was moved
// aside byte for byte, replaced by a fresh database with defaults, and that
// the reset was logged and recorded as activity.
func checkRecovered(t *testing.T, path string, damaged []byte) {
	t.Helper()
	ctx := context.Background()
	logs := &logBuffer{}
	s, err := Open(ctx, path, Options{Logger: logs.Logger(), Now: newClock(recoveryClock).Now})
	if err != nil {
		t.Fatalf("Open refused the damaged database: %v", err)
	}
	defer s.Close()

	want := path + ".corrupt-20261127T102731Z"
	if s.Recovered() != want {
		t.Fatalf("Recovered() = %q, want %q", s.Recovered(), want)
	}
	kept, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("kept copy: %v", err)
	}
	if !bytes.Equal(kept, damaged) {
		t.Error("kept copy differs from the damaged file")
	}
	if !strings.Contains(logs.String(), "kept_copy="+want) || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("no warning naming the kept copy:\n%s", logs)
	}
	if v, _, _ := s.Setting(ctx, "theme"); v != "dark" {
		t.Errorf("fresh database theme = %q, want default", v)
	}
	list, err := s.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("activity after reset = %v, %v; want just the reset notice", list, err)
	}
	a := list[0]
	if a.Type != model.ActivityError || a.Status != model.ActivityFailed ||
		!strings.Contains(a.Title, "corrupt") || !strings.Contains(a.Title, "reset") {
		t.Errorf("reset notice = %+v", a)
	}
	var details struct {
		KeptCopy string `json:"kept_copy"`
	}
	if err := json.Unmarshal(a.Details, &details); err != nil || details.KeptCopy != want {
		t.Errorf("reset notice details = %s (%v)", a.Details, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("fresh file: %v, %v", fi, err)
	}

	// Opening again finds a sound database and recovers nothing.
	s.Close()
	s2, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.Recovered() != "" {
		t.Errorf("second Open recovered again: %s", s2.Recovered())
	}
}

func TestRecoverSmashedHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard.db")
	fillDatabase(t, path, 100)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{'X'}, 100), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	damaged, _ := os.ReadFile(path)
	checkRecovered(t, path, damaged)
}

func TestRecoverCorruptPage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard.db")
	fillDatabase(t, path, 2000)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := int(binary.BigEndian.Uint16(data[16:18]))
	pages := len(data) / pageSize
	if pages < 50 {
		t.Fatalf("only %d pages; not enough to have a middle", pages)
	}
	// Find a table leaf page (type 0x0D) in the middle and fill it with
	// garbage: a b-tree page quick_check must walk.
	victim := -1
	for p := pages / 2; p < pages; p++ {
		if data[p*pageSize] == 0x0D {
			victim = p
			break
		}
	}
	if victim < 0 {
		t.Fatal("no table leaf page in the second half")
	}
	page := data[victim*pageSize : (victim+1)*pageSize]
	for i := range page {
		page[i] = byte(i*7 + 3)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	// Make sure the damage is the kind quick_check reports.
	raw := rawDB(t, path, time.Second)
	var result string
	err = raw.QueryRow(`PRAGMA quick_check`).Scan(&result)
	if err == nil && result == "ok" {
		t.Fatal("quick_check still says ok; the corruption is not detectable")
	}
	t.Logf("quick_check on the damaged file: %q %v", result, err)
	raw.Close()

	checkRecovered(t, path, data)
}

// SQLite treats a zero-length file as an empty database, and so do we: it is
// initialised in place, nothing is moved aside.
func TestZeroLengthFileIsANewDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Recovered() != "" {
		t.Errorf("Recovered() = %q, want nothing moved", s.Recovered())
	}
	if v, _, _ := s.Setting(context.Background(), "theme"); v != "dark" {
		t.Errorf("theme = %q, want the default", v)
	}
	if list, _ := s.ListActivity(context.Background(), model.ActivityFilter{}); len(list) != 0 {
		t.Errorf("activity = %v, want none", list)
	}
	matches, _ := filepath.Glob(path + ".corrupt-*")
	if len(matches) != 0 {
		t.Errorf("moved aside: %v", matches)
	}
}

func TestMoveAsideKeepsSidecarsAndNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dashboard.db")
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("dashboard.db", "main1")
	write("dashboard.db-wal", "wal1")
	write("dashboard.db-shm", "shm1")
	first, err := moveAside(path, "20261127T102731Z")
	if err != nil {
		t.Fatal(err)
	}
	write("dashboard.db", "main2")
	second, err := moveAside(path, "20261127T102731Z")
	if err != nil {
		t.Fatal(err)
	}
	if first != path+".corrupt-20261127T102731Z" || second != first+"-2" {
		t.Fatalf("moved to %q and %q", first, second)
	}
	for file, want := range map[string]string{
		first: "main1", first + "-wal": "wal1", first + "-shm": "shm1", second: "main2",
	} {
		if got, err := os.ReadFile(file); err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", filepath.Base(file), got, err, want)
		}
	}
	for _, gone := range []string{path, path + "-wal", path + "-shm", second + "-wal"} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s still exists", filepath.Base(gone))
		}
	}
}
