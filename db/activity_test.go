package db

import (
	"context"
	"dashboard/model"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestInsertActivityRoundTrip(t *testing.T) {
	clock := newClock(time.Date(2026, 11, 27, 11, 27, 31, 123456789, time.FixedZone("CET", 3600)))
	s, _, _ := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()

	details := json.RawMessage(`{"preset":"FLUX_DEV","files":[1,2],"nested":{"ok":true},"text":"é \"q\""}`)
	got, err := s.InsertActivity(ctx, model.Activity{
		ID: 999, Type: model.ActivityDownload, Status: model.ActivityCompleted,
		Title: "Model FLUX_DEV", Subtitle: "2 files", Details: details,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantTime := time.Date(2026, 11, 27, 10, 27, 31, 123000000, time.UTC)
	if got.ID == 999 || got.ID <= 0 || !got.CreatedAt.Equal(wantTime) || got.CreatedAt.Location() != time.UTC {
		t.Errorf("returned %+v", got)
	}
	// Stored as fixed-width UTC text written by Go.
	if raw := queryString(t, s.cur.db, `SELECT quote(created_at) FROM activity WHERE id = ?`, got.ID); raw != "'2026-11-27T10:27:31.123Z'" {
		t.Errorf("stored created_at = %s", raw)
	}
	if typ := queryString(t, s.cur.db, `SELECT typeof(details) FROM activity WHERE id = ?`, got.ID); typ != "text" {
		t.Errorf("details stored as %s, want text so JSON functions work", typ)
	}
	if v := queryString(t, s.cur.db, `SELECT details ->> '$.nested.ok' FROM activity WHERE id = ?`, got.ID); v != "1" {
		t.Errorf("json_extract on details = %q", v)
	}

	list, err := s.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if !reflect.DeepEqual(list[0], got) {
		t.Errorf("listed %+v\nreturned %+v", list[0], got)
	}
	var a, b any
	json.Unmarshal(details, &a)
	json.Unmarshal(list[0].Details, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("details round trip: %s", list[0].Details)
	}
}

func TestInsertActivityDetailsAndValidation(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		a       model.Activity
		wantErr string
		null    bool
	}{
		{name: "nil details", a: model.Activity{Type: model.ActivityError, Status: model.ActivityFailed}, null: true},
		{name: "empty details", a: model.Activity{Type: model.ActivityError, Status: model.ActivityFailed, Details: json.RawMessage{}}, null: true},
		{name: "json null", a: model.Activity{Type: model.ActivityError, Status: model.ActivityFailed, Details: json.RawMessage(" null ")}, null: true},
		{name: "array", a: model.Activity{Type: model.ActivityGeneration, Status: model.ActivityStarted, Details: json.RawMessage(`[1]`)}},
		{name: "bad json", a: model.Activity{Type: model.ActivityError, Status: model.ActivityFailed, Details: json.RawMessage(`{`)}, wantErr: "not valid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.InsertActivity(ctx, tc.a)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			isNull := queryString(t, s.cur.db, `SELECT details IS NULL FROM activity WHERE id = ?`, got.ID) == "1"
			if isNull != tc.null || (got.Details == nil) != tc.null {
				t.Errorf("stored NULL = %v, returned %q; want NULL = %v", isNull, got.Details, tc.null)
			}
			js, _ := json.Marshal(got)
			if tc.null && !strings.Contains(string(js), `"details":null`) {
				t.Errorf("JSON = %s", js)
			}
		})
	}
}

func TestListActivityFiltersAndPages(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	types := []model.ActivityType{model.ActivityDownload, model.ActivityGeneration, model.ActivityError}
	statuses := []model.ActivityStatus{model.ActivityStarted, model.ActivityCompleted, model.ActivityFailed}
	var all []model.Activity
	for i := range 40 {
		a, err := s.InsertActivity(ctx, model.Activity{Type: types[i%3], Status: statuses[i%2+(i%5)/4], Title: fmt.Sprint(i)})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, a)
	}
	match := func(f model.ActivityFilter) []int64 {
		var ids []int64
		for i := len(all) - 1; i >= 0; i-- {
			a := all[i]
			if (f.Type == "" || a.Type == f.Type) && (f.Status == "" || a.Status == f.Status) {
				ids = append(ids, a.ID)
			}
		}
		return ids
	}
	for _, f := range []model.ActivityFilter{
		{},
		{Type: model.ActivityGeneration},
		{Status: model.ActivityCompleted},
		{Type: model.ActivityDownload, Status: model.ActivityFailed},
		{Type: model.ActivityError, Status: model.ActivityStarted},
	} {
		want := match(f)
		// Walk the pages with keyset pagination, 7 at a time.
		var got []int64
		page := f
		page.Limit = 7
		for {
			rows, err := s.ListActivity(ctx, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) > 7 {
				t.Fatalf("page of %d rows", len(rows))
			}
			for _, r := range rows {
				got = append(got, r.ID)
			}
			if len(rows) < 7 {
				break
			}
			page.Before = rows[len(rows)-1].ID
		}
		if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Errorf("filter %+v: ids %v, want %v", f, got, want)
		}
	}
	empty, err := s.ListActivity(ctx, model.ActivityFilter{Type: "nope"})
	if err != nil || empty == nil || len(empty) != 0 {
		t.Errorf("no match = %#v, %v; want an empty, non-nil slice", empty, err)
	}
}

func TestListActivityLimits(t *testing.T) {
	for _, tc := range []struct{ in, want int }{{-1, 50}, {0, 50}, {1, 1}, {50, 50}, {500, 500}, {501, 500}, {1 << 30, 500}} {
		if got := listLimit(tc.in); got != tc.want {
			t.Errorf("listLimit(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
	s, _, _ := openTest(t, Options{})
	insertOldActivity(t, s, 520, time.Now())
	for _, tc := range []struct{ limit, want int }{{0, 50}, {10, 10}, {1000, 500}} {
		got, err := s.ListActivity(context.Background(), model.ActivityFilter{Limit: tc.limit})
		if err != nil || len(got) != tc.want {
			t.Errorf("Limit %d: %d rows, %v; want %d", tc.limit, len(got), err, tc.want)
		}
	}
}

// insertOldActivity adds n rows created at ts in one transaction, bypassing
// the store's clock.
func insertOldActivity(t *testing.T, s *Store, n int, ts time.Time) {
	t.Helper()
	tx, err := s.cur.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	stmt, err := tx.Prepare(sqlInsertActivity)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := stmt.Exec(model.ActivityDownload, model.ActivityCompleted, "old", nil, nil, formatTime(ts)); err != nil {
			t.Fatal(err)
		}
	}
	stmt.Close()
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestClearActivity(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	insertOldActivity(t, s, 17, time.Now())
	n, err := s.ClearActivity(ctx)
	if err != nil || n != 17 {
		t.Fatalf("ClearActivity = %d, %v; want 17", n, err)
	}
	if list, _ := s.ListActivity(ctx, model.ActivityFilter{}); len(list) != 0 {
		t.Errorf("%d rows left", len(list))
	}
	if n, err := s.ClearActivity(ctx); err != nil || n != 0 {
		t.Errorf("second clear = %d, %v", n, err)
	}
	// Ids keep growing after a clear, so a client's keyset cursor stays valid.
	a, _ := s.InsertActivity(ctx, model.Activity{Type: model.ActivityError, Status: model.ActivityFailed})
	if a.ID <= 17 {
		t.Errorf("id after clear = %d, want > 17", a.ID)
	}
}

func TestDeleteActivityBeforeInBatches(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s, _, logs := openTest(t, Options{Now: newClock(now).Now})
	ctx := context.Background()
	insertOldActivity(t, s, 12000, now.Add(-40*24*time.Hour))
	insertOldActivity(t, s, 3, now.Add(-time.Hour))
	// Exactly at the cutoff is kept: only rows strictly before it go.
	cutoff := now.Add(-24 * time.Hour)
	insertOldActivity(t, s, 2, cutoff)

	n, err := s.DeleteActivityBefore(ctx, cutoff)
	if err != nil || n != 12000 {
		t.Fatalf("deleted %d, %v; want 12000", n, err)
	}
	if left := queryString(t, s.cur.db, `SELECT count(*) FROM activity`); left != "5" {
		t.Errorf("%s rows left, want the 5 newer ones", left)
	}
	if got := logs.Count("deleted old activity batch"); got != 3 {
		t.Errorf("%d batches, want 3 (5000 + 5000 + 2000):\n%s", got, logs)
	}
	for _, want := range []string{"rows=5000 total=5000", "rows=5000 total=10000", "rows=2000 total=12000"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no batch logged with %s", want)
		}
	}
}

// The batch loop with small batches: every batch deletes at most the batch
// size, and the loop ends at the first short batch.
func TestDeleteInBatches(t *testing.T) {
	for _, tc := range []struct{ rows, batch, batches int }{
		{0, 3, 0}, {2, 3, 1}, {3, 3, 1}, {7, 3, 3}, {9, 3, 3},
	} {
		t.Run(fmt.Sprintf("%d_by_%d", tc.rows, tc.batch), func(t *testing.T) {
			s, _, logs := openTest(t, Options{})
			insertOldActivity(t, s, tc.rows, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC))
			n, err := s.deleteInBatches(context.Background(), sqlDeleteActivityBatch, formatTime(time.Now()), tc.batch)
			if err != nil || n != int64(tc.rows) {
				t.Fatalf("deleted %d, %v; want %d", n, err, tc.rows)
			}
			if got := logs.Count("deleted old activity batch"); got != tc.batches {
				t.Errorf("%d batches, want %d", got, tc.batches)
			}
			if strings.Contains(logs.String(), fmt.Sprintf("rows=%d ", tc.batch+1)) {
				t.Errorf("a batch exceeded %d rows:\n%s", tc.batch, logs)
			}
		})
	}
}

func TestCleanupActivity(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	clock := newClock(now)
	s, _, _ := openTest(t, Options{Now: clock.Now})
	ctx := context.Background()
	insertOldActivity(t, s, 4, now.Add(-31*24*time.Hour))
	insertOldActivity(t, s, 2, now.Add(-29*24*time.Hour))
	n, err := s.CleanupActivity(ctx, 30)
	if err != nil || n != 4 {
		t.Fatalf("CleanupActivity(30) = %d, %v; want 4", n, err)
	}
	clock.Set(now.Add(2 * 24 * time.Hour))
	if n, _ := s.CleanupActivity(ctx, 30); n != 2 {
		t.Errorf("two days later deleted %d, want 2", n)
	}
	if _, err := s.CleanupActivity(ctx, 0); err == nil {
		t.Error("retention of 0 days accepted")
	}
}

func TestConcurrentWrites(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make(chan int64, 80)
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				a, err := s.InsertActivity(ctx, model.Activity{Type: model.ActivityGeneration, Status: model.ActivityStarted, Title: fmt.Sprint(w, i)})
				if err != nil {
					t.Error(err)
					return
				}
				ids <- a.ID
				if _, err := s.ListActivity(ctx, model.ActivityFilter{Limit: 5}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %d returned twice", id)
		}
		seen[id] = true
	}
	if len(seen) != 80 || queryString(t, s.cur.db, `SELECT count(*) FROM activity`) != "80" {
		t.Errorf("%d ids, want 80", len(seen))
	}
}
