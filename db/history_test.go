package db

import (
	"context"
	"testing"

	"dashboard/model"
)

// Rows written before sizes and codes were kept read as well as they can:
// no bytes, the message as the error, an interrupted one as its sentence.
func TestOldHistoryRowsRead(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO download_history (id, preset_id, status, error_message, files_completed, files_total, started_at, completed_at)
		 VALUES (1, 'OLD_FAIL', 'failed', 'HTTP 500 from the server', 0, 1, '2026-01-01T10:00:00.000Z', '2026-01-01T10:01:05.400Z')`,
		`INSERT INTO download_history (id, preset_id, status, error_message, files_completed, files_total, started_at, completed_at)
		 VALUES (2, 'OLD_STOP', 'failed', 'interrupted', 1, 2, '2026-01-01T10:00:00.000Z', '2026-01-01T11:00:00.000Z')`,
		`INSERT INTO download_history (id, preset_id, status, files_completed, files_total, started_at)
		 VALUES (3, 'OLD_RUN', 'downloading', 0, 1, '2026-01-01T10:00:00.000Z')`,
	} {
		if _, err := s.cur.db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := s.ListDownloads(ctx, 0, 10)
	if err != nil || len(rows) != 3 {
		t.Fatalf("ListDownloads = %+v, %v", rows, err)
	}
	run, stop, fail := rows[0], rows[1], rows[2]
	for _, r := range rows {
		if r.Kind != model.KindInstall {
			t.Errorf("row %d from before kinds: kind %q, want install", r.ID, r.Kind)
		}
	}
	if run.Error != nil || run.DurationSeconds != nil || run.BytesDone != 0 {
		t.Errorf("running row = %+v", run)
	}
	if stop.Error == nil || stop.Error.Code != model.CodeInterrupted || stop.Error.Message != model.InterruptedMessage || stop.ErrorMessage != "interrupted" {
		t.Errorf("interrupted row = %+v", stop)
	}
	if fail.Error == nil || fail.Error.Code != "" || fail.Error.Message != "HTTP 500 from the server" || fail.DurationSeconds == nil || *fail.DurationSeconds != 65 {
		t.Errorf("failed row = %+v (error %+v)", fail, fail.Error)
	}
}
