package activity_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"dashboard/activity"
	"dashboard/db"
	"dashboard/model"
	"dashboard/settings"
)

type nopPublisher struct{}

func (nopPublisher) Publish(string, any) {}

// movableClock is a clock the test moves by hand.
type movableClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *movableClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *movableClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// The retention job deletes by the store's clock and reads the setting
// afresh on every run.
func TestExpireFollowsClockAndSetting(t *testing.T) {
	ctx := context.Background()
	clock := &movableClock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := db.Open(ctx, filepath.Join(t.TempDir(), "d.db"), db.Options{Now: clock.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sets := settings.New(settings.Config{Store: store, Publisher: nopPublisher{}, Logger: log, HFEndpoint: "http://127.0.0.1:1"})
	acts := activity.New(activity.Config{Store: store, Publisher: nopPublisher{}, Logger: log, RetentionDays: sets.RetentionDays})
	job := acts.Expire

	if _, err := store.InsertActivity(ctx, model.Activity{Type: "error", Status: "failed", Title: "day 0"}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		rows, err := store.ListActivity(ctx, model.ActivityFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}

	clock.Add(29 * 24 * time.Hour)
	job(ctx)
	if count() != 1 {
		t.Fatal("a 29-day-old row was deleted with 30-day retention")
	}
	clock.Add(2 * 24 * time.Hour)
	if _, err := store.InsertActivity(ctx, model.Activity{Type: "error", Status: "failed", Title: "day 31"}); err != nil {
		t.Fatal(err)
	}
	job(ctx)
	if count() != 1 {
		t.Fatal("the 31-day-old row was kept, or the new one deleted")
	}

	// A shorter retention from settings applies on the next run.
	days := 1
	if _, err := sets.Update(ctx, settings.Patch{RetentionDays: &days}); err != nil {
		t.Fatal(err)
	}
	clock.Add(36 * time.Hour)
	job(ctx)
	if count() != 0 {
		t.Fatal("retention setting of 1 day not applied")
	}
}
