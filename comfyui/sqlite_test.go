package comfyui

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"dashboard/activity"
	"dashboard/db"
	"dashboard/model"
)

type noPublisher struct{}

func (noPublisher) Publish(string, any) {}

// TestRealStoreAcrossDashboardRestart runs two watchers, each on a freshly
// opened SQLite file, as two dashboard processes would.
func TestRealStoreAcrossDashboardRestart(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	path := filepath.Join(t.TempDir(), "dashboard.db")
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	open := func() *db.Store {
		store, err := db.Open(ctx, path, db.Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		return store
	}
	list := func(store *db.Store) []model.Activity {
		acts, err := store.ListActivity(ctx, model.ActivityFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return acts
	}

	store := open()
	now := msNow()
	f.finish("old", map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(now-9000, now-8000))
	stop := startWatcher(t, Config{URL: f.url(), Recorder: activity.New(activity.Config{Store: store, Publisher: noPublisher{}, Logger: quiet}), Prompts: store})
	f.run("p", map[string]any{"workflow_name": "SDXL"})
	waitFor(t, "started", func() bool { return len(list(store)) == 1 })
	stop()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}

	now = msNow()
	f.finish("p", nil, map[string]any{"9": images("output", 2)}, successStatus(now, now+20))
	store = open()
	defer store.Close()
	stop = startWatcher(t, Config{URL: f.url(), Recorder: activity.New(activity.Config{Store: store, Publisher: noPublisher{}, Logger: quiet}), Prompts: store})
	waitFor(t, "completed", func() bool { return len(list(store)) == 2 })
	waitPolls(t, f, 5)
	stop()
	acts := list(store) // newest first
	if len(acts) != 2 || acts[0].Title != "2 images generated" || acts[0].Subtitle != "SDXL" || acts[1].Title != "Generation started" {
		t.Fatalf("activity = %+v", acts)
	}
	if st, ok, err := store.PromptStatus(ctx, "old"); err != nil || !ok || st != model.ActivityCompleted {
		t.Errorf("old prompt: %q %v %v, want remembered as completed", st, ok, err)
	}
}
