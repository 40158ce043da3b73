package db

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"dashboard/model"
)

func TestChooseJournal(t *testing.T) {
	notLinux := errors.New("filesystem types are only detected on Linux")
	wal := []string{journalWAL, journalWALExclusive, journalDelete}
	for _, tc := range []struct {
		name    string
		setting string
		magic   int64
		statErr error
		first   string // the mode tried first
		only    bool   // and no other
		fs      string
		reason  string // a piece of the reason logged
	}{
		{"nfs", JournalAuto, 0x6969, nil, journalDelete, true, "nfs", "network or FUSE filesystem (nfs)"},
		{"smb", JournalAuto, 0x517b, nil, journalDelete, true, "smb", "network"},
		{"cifs", JournalAuto, 0xff534d42, nil, journalDelete, true, "cifs", "network"},
		{"smb2", JournalAuto, 0xfe534d42, nil, journalDelete, true, "smb2", "network"},
		{"fuse (MooseFS)", JournalAuto, 0x65735546, nil, journalDelete, true, "fuse", "FUSE filesystem (fuse)"},
		{"ceph", JournalAuto, 0x00c36400, nil, journalDelete, true, "ceph", "network"},
		{"9p", JournalAuto, 0x01021997, nil, journalDelete, true, "9p", "network"},
		{"lustre", JournalAuto, 0x0bd00bd0, nil, journalDelete, true, "lustre", "network"},
		{"gpfs", JournalAuto, 0x47504653, nil, journalDelete, true, "gpfs", "network"},
		{"ext4", JournalAuto, 0xef53, nil, journalWAL, false, "ext4", "local filesystem (ext4)"},
		{"xfs", JournalAuto, 0x58465342, nil, journalWAL, false, "xfs", "local"},
		{"tmpfs", JournalAuto, 0x01021994, nil, journalWAL, false, "tmpfs", "local"},
		{"overlayfs", JournalAuto, 0x794c7630, nil, journalWAL, false, "overlayfs", "local"},
		{"unknown", JournalAuto, 0x12345678, nil, journalWAL, false, "0x12345678", "local filesystem (0x12345678)"},
		{"statfs failed", JournalAuto, 0, notLinux, journalWAL, false, "", "could not be identified"},
		{"wal forced on fuse", JournalWAL, 0x65735546, nil, journalWAL, false, "fuse", "--db-journal wal"},
		{"delete forced on ext4", JournalDelete, 0xef53, nil, journalDelete, true, "ext4", "--db-journal delete"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := chooseJournal(tc.setting, tc.magic, tc.statErr)
			if len(c.modes) == 0 || c.modes[0] != tc.first {
				t.Fatalf("modes = %v, want %s first", c.modes, tc.first)
			}
			if tc.only && len(c.modes) != 1 {
				t.Errorf("modes = %v, want only %s", c.modes, tc.first)
			}
			if tc.setting == JournalAuto && !tc.only && !equal(c.modes, wal) {
				t.Errorf("modes = %v, want the WAL chain %v", c.modes, wal)
			}
			if tc.setting == JournalWAL && contains(c.modes, journalDelete) {
				t.Errorf("forced WAL may fall back to the rollback journal: %v", c.modes)
			}
			if c.fs != tc.fs {
				t.Errorf("fs = %q, want %q", c.fs, tc.fs)
			}
			if !strings.Contains(c.reason, tc.reason) {
				t.Errorf("reason %q does not say %q", c.reason, tc.reason)
			}
		})
	}
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// A database on a FUSE filesystem gets the rollback journal with FULL sync,
// even one a local run left in WAL mode, and the log says why.
func TestOpenOnFUSEUsesRollbackJournal(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dashboard.db")
	local, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	if local.JournalMode() != journalWAL {
		t.Fatalf("control: local journal %q", local.JournalMode())
	}
	if _, err := local.InsertActivity(ctx, model.Activity{Type: model.ActivityDownload, Status: model.ActivityStarted, Title: "kept"}); err != nil {
		t.Fatal(err)
	}
	local.Close()

	logs := &logBuffer{}
	fuse := func(string) (int64, error) { return 0x65735546, nil }
	s, err := Open(ctx, path, Options{Logger: logs.Logger(), fsMagic: fuse})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.JournalMode(); got != journalDelete {
		t.Errorf("JournalMode() = %q, want delete", got)
	}
	if got := queryString(t, s.cur.db, `PRAGMA journal_mode`); got != "delete" {
		t.Errorf("PRAGMA journal_mode = %q", got)
	}
	if got := queryString(t, s.cur.db, `PRAGMA synchronous`); got != "2" {
		t.Errorf("PRAGMA synchronous = %q, want 2 (FULL)", got)
	}
	if !strings.Contains(logs.String(), `msg="database journal"`) || !strings.Contains(logs.String(), "filesystem=fuse") ||
		!strings.Contains(logs.String(), "WAL's shared memory is not shared between machines") {
		t.Errorf("the log does not say which journal and why:\n%s", logs)
	}
	if n := logs.Count("WAL journal not available on this filesystem; using fallback"); n != 0 {
		t.Errorf("choosing the rollback journal on FUSE was logged as a fallback")
	}
	list, err := s.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(list) != 1 || list[0].Title != "kept" {
		t.Fatalf("rows written in WAL mode: %v %v", list, err)
	}
}

func TestForcedWALFailsWhereWALCannotWork(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dashboard.db")
	_, err := Open(context.Background(), path, Options{Logger: quietLogger(), Journal: JournalWAL, vfs: "dbtest-nowal"})
	if err == nil || !strings.Contains(err.Error(), "--db-journal wal") {
		t.Fatalf("err = %v, want one naming --db-journal wal", err)
	}
	s, err := Open(context.Background(), path, Options{Logger: quietLogger(), Journal: JournalDelete})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.JournalMode() != journalDelete {
		t.Errorf("JournalMode() = %q with --db-journal delete", s.JournalMode())
	}
	if _, err := Open(context.Background(), path, Options{Journal: "memory"}); err == nil {
		t.Error("an unknown journal setting was accepted")
	}
}
