package db

import (
	"context"
	"strings"
	"testing"

	"dashboard/model"
)

// Every filter the activity API offers is answered from an index, newest
// first: no scan of the table, no sort. Without one, a filter that few rows
// match reads every row (150–200 ms at 1,000,000 rows; see BenchmarkListActivity).
func TestActivityFiltersUseAnIndex(t *testing.T) {
	s, _, _ := openTest(t, Options{})
	ctx := context.Background()
	// A few rows of every kind. The dashboard never runs ANALYZE, so the
	// planner chooses without statistics, as here.
	for _, typ := range model.ActivityTypes {
		for _, st := range model.ActivityStatuses {
			for range 3 {
				if _, err := s.InsertActivity(ctx, model.Activity{Type: typ, Status: st, Title: "t"}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, tc := range []struct {
		f     model.ActivityFilter
		index string
	}{
		{model.ActivityFilter{Type: model.ActivityDownload}, "idx_activity_type "},
		{model.ActivityFilter{Type: model.ActivityDownload, Before: 5}, "idx_activity_type "},
		{model.ActivityFilter{Status: model.ActivityStarted}, "idx_activity_status "},
		{model.ActivityFilter{Status: model.ActivityStarted, Before: 5}, "idx_activity_status "},
		{model.ActivityFilter{Type: model.ActivityDownload, Status: model.ActivityStarted}, "idx_activity_type_status "},
		{model.ActivityFilter{Type: model.ActivityDownload, Status: model.ActivityStarted, Before: 5}, "idx_activity_type_status "},
	} {
		q, args := listActivityQuery(tc.f)
		rows, err := s.cur.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, "USING INDEX "+tc.index) && !strings.Contains(p, "USING COVERING INDEX "+tc.index) || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want %sand no sort", tc.f, p, tc.index)
		}
	}
}
