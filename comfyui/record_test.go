package comfyui

import (
	"context"
	"testing"
	"time"

	"dashboard/model"
)

// A read-only dashboard runs Run without Record: Status follows its pod's
// ComfyUI, and nothing is written, not even the prompts it sees or
// ComfyUI going away.
func TestStatusWithoutRecording(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	w, rec, store, _ := pollOnly(t, f)

	waitFor(t, "reachable", func() bool { return w.Status().Reachable })
	f.run("p1", nil)
	f.queue("p2")
	waitFor(t, "one running, one waiting", func() bool {
		return w.Status() == Status{Watching: true, Reachable: true, QueueRunning: 1, QueuePending: 1}
	})
	now := msNow()
	f.finish("p1", nil, map[string]any{"9": images("output", 1)}, successStatus(now, now+1))
	waitPolls(t, f, 3)
	f.stop()
	waitFor(t, "unreachable", func() bool { return w.Status() == Status{Watching: true} })
	if got := rec.all(); len(got) != 0 {
		t.Errorf("a dashboard that does not record wrote %+v", got)
	}
	if got := store.get("p1"); got != "" {
		t.Errorf("a dashboard that does not record remembered p1 as %q", got)
	}
	if n := f.historyBytes(); n != 0 {
		t.Errorf("read %d bytes of history it does not log", n)
	}
}

// The writer's role comes and goes (the lease lost and taken again): while
// Record runs, prompts are logged; when it stops, nothing more is; when it
// starts again, a prompt whose start was logged is finished once, and
// nothing is logged twice.
func TestRecordStopsAndResumes(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	w, rec, store, ctx := pollOnly(t, f)
	record := func() (stop func()) {
		rctx, rcancel := context.WithCancel(ctx)
		ended := make(chan error, 1)
		go func() { ended <- w.Record(rctx) }()
		return func() {
			rcancel()
			if err := <-ended; err != nil {
				t.Errorf("Record returned %v", err)
			}
		}
	}

	stop := record()
	f.run("p1", nil)
	waitFor(t, "p1 started", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityStarted)) == 1 })
	stop()

	now := msNow()
	f.finish("p1", nil, map[string]any{"9": images("output", 2)}, successStatus(now, now+1))
	f.run("p2", nil)
	waitFor(t, "p2 running", func() bool { return w.Status().QueueRunning == 1 })
	waitPolls(t, f, 3)
	if n := len(rec.all()); n != 1 {
		t.Fatalf("%d activities while not recording, want only p1's start: %+v", n, rec.all())
	}
	if got := store.get("p2"); got != "" {
		t.Errorf("p2 remembered as %q while not recording", got)
	}

	stop = record()
	defer stop()
	waitFor(t, "p1 completed", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityCompleted)) == 1 })
	waitFor(t, "p2 started", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityStarted)) == 2 })
	waitPolls(t, f, 5)
	if n := len(rec.all()); n != 3 {
		t.Fatalf("%d activities, want p1 started and completed, p2 started: %+v", n, rec.all())
	}
}

// pollOnly runs a watcher's Run, not Record, as a read-only dashboard does,
// until the test ends; ctx ends with it.
func pollOnly(t *testing.T, f *fakeComfy) (*Watcher, *recorder, *promptStore, context.Context) {
	t.Helper()
	rec, store := &recorder{}, newPromptStore()
	w, err := New(Config{URL: f.url(), Recorder: rec, Prompts: store, PollInterval: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, rec, store, ctx
}
