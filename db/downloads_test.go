package db

import (
	"context"
	"dashboard/model"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDownloadLifecycle(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := newClock(start)
	s, _, _ := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()

	for _, tc := range []struct {
		status         model.DownloadStatus
		err            *model.Error
		done, total    int
		wantStoredNull bool
		wantMsg        string
		wantErr        *model.Error
	}{
		{model.DownloadCompleted, nil, 3, 3, true, "", nil},
		{model.DownloadFailed, &model.Error{Code: model.CodeHFTokenRequired, Message: "HTTP 401 from HuggingFace"}, 1, 3, false,
			"HTTP 401 from HuggingFace", &model.Error{Code: model.CodeHFTokenRequired, Message: "HTTP 401 from HuggingFace"}},
		{model.DownloadCancelled, nil, 0, 4, true, "", nil},
		// Stored as the word the startup sweep writes, read back as the sentence.
		{model.DownloadFailed, &model.Error{Code: model.CodeInterrupted, Message: model.InterruptedMessage}, 1, 2, false,
			"interrupted", &model.Error{Code: model.CodeInterrupted, Message: model.InterruptedMessage}},
	} {
		clock.Set(start)
		rec, err := s.StartDownload(ctx, "FLUX_DEV", 3)
		if err != nil {
			t.Fatal(err)
		}
		want := model.DownloadRecord{ID: rec.ID, PresetID: "FLUX_DEV", Kind: model.KindInstall, Status: model.DownloadRunning, FilesTotal: 3, StartedAt: start}
		if !reflect.DeepEqual(rec, want) {
			t.Errorf("StartDownload = %+v, want %+v", rec, want)
		}
		if got, err := s.GetDownload(ctx, rec.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("GetDownload = %+v, %v; want %+v", got, err, want)
		}

		end := start.Add(90*time.Second + 250*time.Millisecond)
		clock.Set(end)
		if err := s.FinishDownload(ctx, rec.ID, model.DownloadEnd{Status: tc.status, Error: tc.err, FilesCompleted: tc.done, FilesTotal: tc.total, BytesDone: 1500, BytesTotal: 4000}); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetDownload(ctx, rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		took := int64(90)
		want.Status, want.ErrorMessage, want.Error, want.FilesCompleted, want.FilesTotal, want.CompletedAt = tc.status, tc.wantMsg, tc.wantErr, tc.done, tc.total, &end
		want.BytesDone, want.BytesTotal, want.DurationSeconds = 1500, 4000, &took
		if !reflect.DeepEqual(got, want) {
			t.Errorf("after finish %s: %+v, want %+v", tc.status, got, want)
		}
		isNull := queryString(t, s.cur.db, `SELECT error_message IS NULL FROM download_history WHERE id = ?`, rec.ID) == "1"
		if isNull != tc.wantStoredNull {
			t.Errorf("error_message NULL = %v", isNull)
		}
	}

	if err := s.FinishDownload(ctx, 1, model.DownloadEnd{Status: model.DownloadRunning}); err == nil || !strings.Contains(err.Error(), "not a final status") {
		t.Errorf("finishing as downloading: %v", err)
	}
	if err := s.FinishDownload(ctx, 9999, model.DownloadEnd{Status: model.DownloadCompleted}); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("finish unknown id: %v, want not_found", err)
	}
	if _, err := s.GetDownload(ctx, 9999); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("get unknown id: %v, want not_found", err)
	}
	if _, err := s.StartDownload(ctx, "", 1); err == nil {
		t.Error("empty preset id accepted")
	}
}

// A verify is kept beside installs, as a verify, through its end and a
// restart's sweep.
func TestVerifyRowsKeepTheirKind(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	v, err := s.StartVerify(ctx, "FLUX_DEV", 2)
	if err != nil || v.Kind != model.KindVerify || v.Status != model.DownloadRunning {
		t.Fatalf("StartVerify = %+v, %v", v, err)
	}
	i, _ := s.StartDownload(ctx, "FLUX_DEV", 2)
	if err := s.FinishDownload(ctx, v.ID, model.DownloadEnd{Status: model.DownloadFailed, Error: &model.Error{Code: model.CodeChecksum, Message: "a.bin does not match"}, FilesTotal: 2}); err != nil {
		t.Fatal(err)
	}
	marked, err := s.MarkInterrupted(ctx)
	if err != nil || len(marked) != 1 || marked[0].ID != i.ID || marked[0].Kind != model.KindInstall {
		t.Fatalf("MarkInterrupted = %+v, %v", marked, err)
	}
	rows, err := s.ListDownloads(ctx, 0, 10)
	if err != nil || len(rows) != 2 || rows[1].Kind != model.KindVerify || rows[1].Error.Code != model.CodeChecksum || rows[0].Kind != model.KindInstall {
		t.Fatalf("rows = %+v, %v", rows, err)
	}
}

func TestMarkInterrupted(t *testing.T) {
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := newClock(start)
	s, _, _ := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()
	a, _ := s.StartDownload(ctx, "A", 2)
	b, _ := s.StartDownload(ctx, "B", 2)
	c, _ := s.StartDownload(ctx, "C", 1)
	if err := s.FinishDownload(ctx, b.ID, model.DownloadEnd{Status: model.DownloadCompleted, FilesCompleted: 2, FilesTotal: 2}); err != nil {
		t.Fatal(err)
	}
	finishedB, _ := s.GetDownload(ctx, b.ID)

	restart := start.Add(time.Hour)
	clock.Set(restart)
	marked, err := s.MarkInterrupted(ctx)
	if err != nil || len(marked) != 2 || marked[0].ID != a.ID || marked[1].ID != c.ID || marked[1].PresetID != "C" || marked[0].Status != model.DownloadFailed {
		t.Fatalf("MarkInterrupted = %+v, %v; want rows A and C", marked, err)
	}
	for _, id := range []int64{a.ID, c.ID} {
		got, _ := s.GetDownload(ctx, id)
		if got.Status != model.DownloadFailed || got.ErrorMessage != "interrupted" ||
			got.Error == nil || got.Error.Code != model.CodeInterrupted || got.Error.Message != model.InterruptedMessage ||
			got.CompletedAt == nil || !got.CompletedAt.Equal(restart) {
			t.Errorf("interrupted row %+v", got)
		}
	}
	if got, _ := s.GetDownload(ctx, b.ID); !reflect.DeepEqual(got, finishedB) {
		t.Errorf("finished row changed: %+v", got)
	}
	if again, _ := s.MarkInterrupted(ctx); len(again) != 0 {
		t.Errorf("second MarkInterrupted = %+v", again)
	}
}

func TestListDownloadsPages(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	var ids []int64
	for range 7 {
		r, err := s.StartDownload(ctx, "P", 1)
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]int64{r.ID}, ids...) // newest first
	}
	var got []int64
	var before int64
	pages := 0
	for {
		rows, err := s.ListDownloads(ctx, before, 3)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range rows {
			got = append(got, r.ID)
		}
		if len(rows) < 3 {
			break
		}
		before = rows[len(rows)-1].ID
	}
	if !reflect.DeepEqual(got, ids) || pages != 3 {
		t.Errorf("paged ids %v in %d pages, want %v in 3", got, pages, ids)
	}
	all, err := s.ListDownloads(ctx, 0, 0)
	if err != nil || len(all) != 7 {
		t.Errorf("default limit: %d rows, %v", len(all), err)
	}
	none, err := s.ListDownloads(ctx, ids[len(ids)-1], 10)
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("before the oldest: %#v, %v; want empty", none, err)
	}
}
