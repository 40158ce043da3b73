package comfyui

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"dashboard/model"
)

// An idle ComfyUI with a long history of big workflows: each poll must not
// read the history again, only what may have changed.
func TestIdlePollsDoNotRereadTheHistory(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	graph := map[string]any{"3": map[string]any{"class_type": "KSampler", "inputs": map[string]any{"text": strings.Repeat("a prompt ", 5000)}}}
	old := msNow() - 60_000
	for i := range 40 {
		f.finish("old-"+string(rune('A'+i)), map[string]any{"extra_pnginfo": graph}, map[string]any{"9": images("output", 1)}, successStatus(old, old+1000))
	}
	entry, _ := json.Marshal(f.history[0].entry)
	rec := &recorder{}
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: newPromptStore()})
	waitPolls(t, f, 3) // first contact is over

	before := f.historyBytes()
	waitPolls(t, f, 10)
	perPoll := (f.historyBytes() - before) / 10
	t.Logf("history entry %d bytes; %d bytes of history per idle poll", len(entry), perPoll)
	if perPoll > 2*len(entry) {
		t.Fatalf("an idle poll reads %d bytes of history, more than two entries (%d bytes each)", perPoll, len(entry))
	}

	// Still sees what finishes, even several at once between two polls.
	now := msNow()
	for _, id := range []string{"new-1", "new-2", "new-3", "new-4", "new-5", "new-6"} {
		f.finish(id, map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(now, now+5))
	}
	waitFor(t, "the six new prompts", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityCompleted)) == 6 })
	waitPolls(t, f, 5)
	if n := len(rec.all()); n != 6 {
		t.Fatalf("%d activities, want 6: %+v", n, rec.all())
	}
}

// A prompt id longer than an activity's subtitle may be (a script can
// choose its own) is logged once, shortened, and remembered; it does not
// fail every poll.
func TestLongPromptIDIsLoggedOnce(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	logs := &syncLog{}
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, Logger: logs.logger()})
	waitPolls(t, f, 2)

	id := strings.Repeat("x", 5000)
	f.run(id, map[string]any{})
	waitFor(t, "started", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityStarted)) == 1 })
	now := msNow()
	f.finish(id, nil, map[string]any{"9": images("output", 1)}, successStatus(now, now+10))
	waitFor(t, "completed", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityCompleted)) == 1 })
	waitPolls(t, f, 5)
	if n := len(rec.all()); n != 2 {
		t.Fatalf("%d activities, want started and completed", n)
	}
	for _, a := range rec.all() {
		if len(a.Subtitle) > model.MaxActivitySubtitle || !strings.HasPrefix(a.Subtitle, "xxxx") || len(a.Details) > 2000 {
			t.Errorf("%s: subtitle of %d bytes, details of %d", a.Title, len(a.Subtitle), len(a.Details))
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%.2000s", logs.String())
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	for k, v := range store.m {
		if len(k) > 100 || v != model.ActivityCompleted {
			t.Errorf("stored %q… (%d bytes) as %s", k[:min(len(k), 20)], len(k), v)
		}
	}
}

// syncLog collects log lines from the watcher's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *syncLog) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }
