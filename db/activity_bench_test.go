package db

// BenchmarkListActivity: every filter GET /api/activity offers, on a table of
// 1,000,000 rows. Results are in docs/PERFORMANCE.md.
//
//	go test -run '^$' -bench BenchmarkListActivity -benchtime 300x ./db/
//	DASHBOARD_BENCH_NO_FILTER_INDEXES=1 …   the same without migration 0004's indexes

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"dashboard/model"
)

// benchRows is the table's size; the mix below makes some filters match
// most rows and others a few hundred or none, the case an index is for.
const benchRows = 1_000_000

// sqlFillActivity writes benchRows rows, one a second apart:
// download/started and generation/started 100 each, download/completed and
// error/failed 10,000 each, generation/failed 20,000, the rest
// generation/completed; error/started none.
const sqlFillActivity = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO activity (type, status, title, subtitle, details, created_at)
SELECT
  CASE WHEN i % 10000 = 0 OR i % 100 = 1 THEN 'download' WHEN i % 100 = 2 THEN 'error' ELSE 'generation' END,
  CASE WHEN i % 10000 IN (0, 5000) THEN 'started' WHEN i % 100 = 2 OR i % 50 = 3 THEN 'failed' ELSE 'completed' END,
  '4 images generated', 'Portrait v2',
  '{"prompt_id":"0b5e3a52-8a1f-4d55-9a0e-6c1f7d1d2a9b","images":4,"outputs":[{"path":"ComfyUI_0001.png","type":"output","kind":"image"}]}',
  strftime('%Y-%m-%dT%H:%M:%fZ', 1767225600 + i, 'unixepoch')
FROM n`

func BenchmarkListActivity(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "dashboard.db")
	s, err := Open(ctx, path, Options{Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.cur.db.ExecContext(ctx, sqlFillActivity, benchRows); err != nil {
		b.Fatal(err)
	}
	if os.Getenv("DASHBOARD_BENCH_NO_FILTER_INDEXES") == "1" {
		for _, idx := range []string{"idx_activity_status", "idx_activity_type_status"} {
			if _, err := s.cur.db.ExecContext(ctx, "DROP INDEX "+idx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("filled %d rows in %v", benchRows, time.Since(start).Round(time.Millisecond))

	const mid = benchRows / 2 // a later page: before the middle id
	for _, f := range []model.ActivityFilter{
		{},
		{Type: model.ActivityGeneration},
		{Type: model.ActivityDownload},
		{Type: model.ActivityError},
		{Status: model.ActivityCompleted},
		{Status: model.ActivityFailed},
		{Status: model.ActivityStarted},
		{Type: model.ActivityGeneration, Status: model.ActivityCompleted},
		{Type: model.ActivityDownload, Status: model.ActivityStarted},
		{Type: model.ActivityError, Status: model.ActivityStarted},
	} {
		for _, before := range []int64{0, mid} {
			f.Before, f.Limit = before, 50
			b.Run(benchName(f), func(b *testing.B) {
				took := make([]time.Duration, 0, b.N)
				for b.Loop() {
					t0 := time.Now()
					rows, err := s.ListActivity(ctx, f)
					took = append(took, time.Since(t0))
					if err != nil {
						b.Fatal(err)
					}
					if len(rows) == 0 && !(f.Type == model.ActivityError && f.Status == model.ActivityStarted) {
						b.Fatalf("%+v matched nothing", f)
					}
				}
				slices.Sort(took)
				b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
				b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
			})
		}
	}
}

func benchName(f model.ActivityFilter) string {
	name := "type=" + string(f.Type) + ",status=" + string(f.Status)
	if f.Before > 0 {
		name += fmt.Sprintf(",before=%d", f.Before)
	}
	return name
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
