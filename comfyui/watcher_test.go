package comfyui

import (
	"context"
	"strings"
	"testing"
	"time"

	"dashboard/model"
)

func TestStartedThenCompleted(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	waitPolls(t, f, 2) // the first poll is over

	extra := map[string]any{"client_id": "tab-1", "workflow_name": "Portrait  v2\n", "api_key_comfy_org": "secret-key",
		"extra_pnginfo": map[string]any{"workflow": map[string]any{"nodes": []any{}}}}
	f.run("p1", extra)
	waitFor(t, "started", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityStarted)) == 1 })
	started := rec.where(model.ActivityGeneration, model.ActivityStarted)[0]
	if started.Title != "Generation started" || started.Subtitle != "Portrait v2" {
		t.Errorf("started = %q / %q", started.Title, started.Subtitle)
	}
	if got := store.get("p1"); got != model.ActivityStarted {
		t.Errorf("store after start = %q", got)
	}

	start := msNow()
	f.finish("p1", nil, map[string]any{
		"9":  images("output", 4),
		"12": images("temp", 1, "ComfyUI_temp_x.png"),
		"15": map[string]any{"text": []string{"a caption"}},
	}, successStatus(start, start+12345))
	waitFor(t, "completed", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityCompleted)) == 1 })
	waitPolls(t, f, 5)
	if n := len(rec.all()); n != 2 {
		t.Fatalf("%d activities, want started and completed: %+v", n, rec.all())
	}
	done := rec.where(model.ActivityGeneration, model.ActivityCompleted)[0]
	if done.Title != "4 images generated" || done.Subtitle != "Portrait v2" {
		t.Errorf("completed = %q / %q", done.Title, done.Subtitle)
	}
	d := details(t, done)
	if d["prompt_id"] != "p1" || d["images"] != 4.0 || d["videos"] != 0.0 || d["duration_seconds"] != 12.345 {
		t.Errorf("details = %v", d)
	}
	outs, _ := d["outputs"].([]any)
	if len(outs) != 5 {
		t.Fatalf("outputs = %v, want 4 saved and 1 preview", d["outputs"])
	}
	if first := outs[0].(map[string]any); first["path"] != "ComfyUI_0.png" || first["type"] != "output" || first["kind"] != "image" {
		t.Errorf("first output = %v", first)
	}
	for _, a := range rec.all() {
		if strings.Contains(string(a.Details), "secret-key") || strings.Contains(string(a.Details), "tab-1") {
			t.Errorf("extra_data leaked into details: %s", a.Details)
		}
	}
	if got := store.get("p1"); got != model.ActivityCompleted {
		t.Errorf("store after finish = %q", got)
	}
}

func TestFailedWithMessage(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	waitPolls(t, f, 2) // the first poll is over

	f.run("p2", map[string]any{"client_id": "c"})
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })
	if s := rec.all()[0].Subtitle; s != "p2" {
		t.Errorf("started subtitle without a workflow name = %q, want the prompt id", s)
	}
	start := msNow()
	f.finish("p2", nil, map[string]any{}, errorStatus(start, start+1500, "Allocation on device\nCUDA out of memory", "KSampler"))
	waitFor(t, "failed", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityFailed)) == 1 })
	a := rec.where(model.ActivityGeneration, model.ActivityFailed)[0]
	if a.Title != "Generation failed" || a.Subtitle != "p2: Allocation on device CUDA out of memory" {
		t.Errorf("failed = %q / %q", a.Title, a.Subtitle)
	}
	d := details(t, a)
	if d["node_type"] != "KSampler" || d["prompt_id"] != "p2" || d["duration_seconds"] != 1.5 ||
		!strings.Contains(d["error"].(string), "CUDA out of memory") {
		t.Errorf("details = %v", d)
	}
	if got := store.get("p2"); got != model.ActivityFailed {
		t.Errorf("store = %q", got)
	}
}

func TestFinishedBeforeFirstContactNotLogged(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	old := msNow() - 60_000
	f.finish("old-ok", map[string]any{}, map[string]any{"9": images("output", 2)}, successStatus(old, old+1000))
	f.finish("old-bad", map[string]any{}, nil, errorStatus(old, old+2000, "boom", "VAEDecode"))
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	waitPolls(t, f, 5)
	if acts := rec.all(); len(acts) != 0 {
		t.Fatalf("logged %d activities for prompts finished before first contact: %+v", len(acts), acts)
	}
	if store.get("old-ok") != model.ActivityCompleted || store.get("old-bad") != model.ActivityFailed {
		t.Errorf("store = %v, want both remembered", store.m)
	}

	// An old entry showing up later (newer ones deleted in ComfyUI) is not news.
	f.finish("older", map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(old-5000, old-4000))
	// A prompt that ran entirely between two polls is: completed, no start.
	now := msNow()
	f.finish("quick", map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(now, now+5))
	waitFor(t, "quick prompt", func() bool { return len(rec.all()) >= 1 })
	waitPolls(t, f, 5)
	acts := rec.all()
	if len(acts) != 1 || acts[0].Status != model.ActivityCompleted || acts[0].Title != "1 image generated" || acts[0].Subtitle != "quick" {
		t.Fatalf("activities = %+v, want one completed for quick", acts)
	}
	if store.get("older") != model.ActivityCompleted {
		t.Errorf("older entry not remembered: %v", store.m)
	}
}

func TestLoggedOnceAcrossWatcherRestart(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	cfg := Config{URL: f.url(), Recorder: rec, Prompts: store}

	stopA := startWatcher(t, cfg)
	f.run("p1", map[string]any{"workflow_name": "Upscale"})
	f.queue("p9")
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })
	stopA()

	// Finished while the dashboard was down: its start is in the store.
	start := msNow()
	f.finish("p1", nil, map[string]any{"9": map[string]any{"gifs": []any{
		map[string]any{"filename": "clip.mp4", "subfolder": "vid", "type": "output", "format": "video/h264-mp4"},
	}}}, successStatus(start, start+100))
	f.finish("unseen", map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(start, start+5))

	stopB := startWatcher(t, cfg)
	waitFor(t, "completed after restart", func() bool { return len(rec.all()) == 2 })
	waitPolls(t, f, 5)
	stopB()
	acts := rec.all()
	if len(acts) != 2 || acts[1].Status != model.ActivityCompleted || acts[1].Title != "1 video generated" || acts[1].Subtitle != "Upscale" {
		t.Fatalf("activities = %+v, want started then completed for p1 only", acts)
	}
	if d := details(t, acts[1]); d["outputs"].([]any)[0].(map[string]any)["path"] != "vid/clip.mp4" {
		t.Errorf("details = %v", d)
	}

	startWatcher(t, cfg)
	waitPolls(t, f, 5)
	if n := len(rec.all()); n != 2 {
		t.Errorf("a third watcher logged again: %+v", rec.all()[2:])
	}
}

func TestComfyRestartLogsNothingTwice(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	waitPolls(t, f, 2) // the first poll is over

	f.run("a", nil)
	waitFor(t, "a started", func() bool { return len(rec.all()) == 1 })
	now := msNow()
	f.finish("a", nil, map[string]any{"9": images("output", 1)}, successStatus(now, now+10))
	waitFor(t, "a completed", func() bool { return len(rec.all()) == 2 })

	f.crash()
	waitFor(t, "unreachable", func() bool { return len(rec.where(model.ActivityError, model.ActivityFailed)) == 1 })
	f.start()
	waitPolls(t, f, 5)
	f.run("b", nil)
	waitFor(t, "b started", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityStarted)) == 2 })
	now = msNow()
	f.finish("b", nil, map[string]any{"9": images("output", 2)}, successStatus(now, now+10))
	waitFor(t, "b completed", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityCompleted)) == 2 })
	waitPolls(t, f, 5)
	if n := len(rec.all()); n != 5 {
		t.Fatalf("%d activities, want a started+completed, unreachable, b started+completed: %+v", n, rec.all())
	}
}

func TestPromptLostInComfyRestart(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	f.run("lost", map[string]any{"workflow_name": "Video"})
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })

	f.crash()
	time.Sleep(100 * time.Millisecond)
	f.start()
	waitFor(t, "interrupted", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityFailed)) == 1 })
	waitPolls(t, f, 10)
	failed := rec.where(model.ActivityGeneration, model.ActivityFailed)
	if len(failed) != 1 || failed[0].Title != "Generation failed" || failed[0].Subtitle != "Video: interrupted: ComfyUI restarted" {
		t.Fatalf("failed = %+v", failed)
	}
	if store.get("lost") != model.ActivityFailed {
		t.Errorf("store = %q", store.get("lost"))
	}
}

func TestRunningPromptMissingBrieflyIsNotLost(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, PollInterval: 30 * time.Millisecond})
	f.run("p", nil)
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })
	// Gone from the queue for one poll, then in the history: only the
	// history entry counts.
	f.vanish("p")
	waitPolls(t, f, 2) // the first poll is over
	now := msNow()
	f.finish("p", map[string]any{}, map[string]any{"9": images("output", 3)}, successStatus(now, now+10))
	waitFor(t, "completed", func() bool { return len(rec.all()) == 2 })
	waitPolls(t, f, 8)
	if acts := rec.all(); len(acts) != 2 || acts[1].Title != "3 images generated" {
		t.Fatalf("activities = %+v", acts)
	}
}

func TestFinishedOutsideWindowFoundByID(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	f.run("p", nil)
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })
	f.unlist("p")
	now := msNow()
	f.finish("p", nil, map[string]any{"9": images("output", 2)}, successStatus(now, now+10))
	waitFor(t, "completed", func() bool { return len(rec.all()) == 2 })
	if a := rec.all()[1]; a.Title != "2 images generated" {
		t.Errorf("activity = %+v, want the history entry, not a lost prompt", a)
	}
}

func TestUnreadableHistoryEntryIsNotLost(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, PollInterval: 10 * time.Millisecond})
	f.run("p", nil)
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })
	f.finish("p", nil, nil, nil)
	f.setEntry("p", map[string]any{"prompt": "odd", "outputs": 3})
	waitPolls(t, f, 20)
	if n := len(rec.all()); n != 1 {
		t.Fatalf("a prompt ComfyUI still lists was logged: %+v", rec.all()[1:])
	}
	now := msNow()
	f.setEntry("p", map[string]any{"prompt": []any{1, "p", map[string]any{}, map[string]any{}, []any{}},
		"outputs": map[string]any{"9": images("output", 1)}, "status": successStatus(now, now+1)})
	waitFor(t, "completed once readable", func() bool { return len(rec.all()) == 2 })
}

func TestUnreachableOncePerOutage(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	f.stop() // down before the watcher starts
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, MaxBackoff: 40 * time.Millisecond})
	time.Sleep(300 * time.Millisecond)
	if acts := rec.all(); len(acts) != 0 {
		t.Fatalf("never reachable, yet logged %+v", acts)
	}

	f.start()
	waitPolls(t, f, 2)
	f.stop()
	waitFor(t, "unreachable", func() bool { return len(rec.all()) == 1 })
	time.Sleep(400 * time.Millisecond) // about ten more failed polls
	acts := rec.all()
	if len(acts) != 1 {
		t.Fatalf("%d activities during one outage: %+v", len(acts), acts)
	}
	a := acts[0]
	if a.Type != model.ActivityError || a.Status != model.ActivityFailed || a.Title != "ComfyUI is unreachable" || a.Subtitle != f.url() {
		t.Errorf("activity = %+v", a)
	}
	if d := details(t, a); d["url"] != f.url() || !strings.Contains(d["error"].(string), "refused") {
		t.Errorf("details = %v", d)
	}

	f.start()
	waitPolls(t, f, 2)
	if n := len(rec.all()); n != 1 {
		t.Fatalf("coming back logged activity: %+v", rec.all())
	}
	f.stop()
	waitFor(t, "second outage", func() bool { return len(rec.all()) == 2 })
}

func TestGarbageCountsAsUnreachable(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, MaxBackoff: 40 * time.Millisecond})
	waitPolls(t, f, 2) // the second /queue request means the first poll is over

	f.setMode("history")
	waitFor(t, "a broken history alone is trouble", func() bool { return len(rec.all()) == 1 })
	for _, mode := range []string{"garbage", "shape", "null", "500", "history"} {
		f.setMode(mode)
		waitPolls(t, f, 4) // keeps trying, whatever ComfyUI says
	}
	if n := len(rec.where(model.ActivityError, model.ActivityFailed)); n != 1 {
		t.Fatalf("%d unreachable activities over one bad spell, want 1: %+v", n, rec.all())
	}
	f.setMode("")
	f.run("p", nil)
	waitFor(t, "started after recovery", func() bool { return len(rec.where(model.ActivityGeneration, model.ActivityStarted)) == 1 })
	f.setMode("garbage")
	waitFor(t, "second bad spell", func() bool { return len(rec.where(model.ActivityError, model.ActivityFailed)) == 2 })
}

func TestWebSocketStatusTriggersPoll(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, PollInterval: time.Hour})
	waitFor(t, "websocket and first poll", func() bool { _, live := f.wsCount(); return live == 1 && f.hits() > 0 })
	time.Sleep(50 * time.Millisecond) // let the poll the greeting frame asked for happen

	f.run("p", nil)
	f.broadcast()
	waitFor(t, "started without waiting an hour", func() bool { return len(rec.all()) == 1 })
	now := msNow()
	f.finish("p", nil, map[string]any{"9": images("output", 1)}, successStatus(now, now+1))
	f.broadcast()
	waitFor(t, "completed", func() bool { return len(rec.all()) == 2 })
	if conns, _ := f.wsCount(); conns != 1 {
		t.Errorf("websocket connected %d times; large binary frames must not break it", conns)
	}
}

func TestWorksWithoutWebSocket(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	f.mu.Lock()
	f.noWS = true
	f.mu.Unlock()
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	f.run("p", nil)
	waitFor(t, "started", func() bool { return len(rec.all()) == 1 })
	now := msNow()
	f.finish("p", nil, map[string]any{"9": images("output", 2)}, successStatus(now, now+1))
	waitFor(t, "completed", func() bool { return len(rec.all()) == 2 })
}

func TestManyFinishedBetweenPolls(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	f.finish("before", map[string]any{}, nil, successStatus(msNow()-10, msNow()-5))
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store, PollInterval: 200 * time.Millisecond})
	waitPolls(t, f, 2)           // the first poll is over
	n := firstHistoryWindow + 20 // more than several history windows, all at once
	now := msNow()
	f.mu.Lock()
	for i := range n {
		f.finishLocked("q"+string(rune('A'+i/26))+string(rune('a'+i%26)), map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(now+int64(i), now+int64(i)+1))
	}
	f.mu.Unlock()
	waitFor(t, "all logged", func() bool { return len(rec.all()) == n })
	if a := rec.all(); a[0].Subtitle != "qAa" || a[n-1].Subtitle != "qBz" {
		t.Errorf("not in finishing order: first %q last %q", a[0].Subtitle, a[n-1].Subtitle)
	}
}

func TestRecordFailureIsRetried(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	rec, store := &recorder{}, newPromptStore()
	startWatcher(t, Config{URL: f.url(), Recorder: rec, Prompts: store})
	waitPolls(t, f, 2) // the first poll is over
	rec.setFail(true)
	f.run("p", nil)
	waitPolls(t, f, 3)
	if store.get("p") != "" {
		t.Fatalf("remembered a start that was never logged")
	}
	rec.setFail(false)
	waitFor(t, "started once the log works", func() bool { return len(rec.all()) == 1 })
	waitPolls(t, f, 3)
	if n := len(rec.all()); n != 1 {
		t.Errorf("%d activities", n)
	}
}

func TestOffWithoutURL(t *testing.T) {
	checkNoLeaks(t)
	w, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run with no URL did not return")
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"localhost:8188", "ftp://host", "http://", "://x", "http://user:hunter2@[::1"} {
		_, err := New(Config{URL: u, Recorder: &recorder{}, Prompts: newPromptStore()})
		if err == nil {
			t.Errorf("New(%q) accepted", u)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	if _, err := New(Config{URL: "http://127.0.0.1:8188"}); err == nil {
		t.Error("New without recorder and store accepted")
	}
	if _, err := New(Config{URL: "https://pod.example/comfy/", Recorder: &recorder{}, Prompts: newPromptStore()}); err != nil {
		t.Errorf("a base path was refused: %v", err)
	}
}

// ComfyUI behind a proxy path, with a password in its URL: the watcher
// polls and follows /ws under that path, and the password stays out of the log.
func TestBasePathAndPasswordKeptOutOfActivity(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfyAt(t, "/comfy")
	rec := &recorder{}
	u := "http://me:hunter2@" + f.addr + "/comfy/"
	startWatcher(t, Config{URL: u, Recorder: rec, Prompts: newPromptStore()})
	waitPolls(t, f, 2)
	waitFor(t, "the websocket under the base path", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.wsConns > 0
	})
	now := time.Now().UnixMilli()
	f.finish("p-base", map[string]any{}, map[string]any{"9": images("output", 1)}, successStatus(now, now+1))
	waitFor(t, "the generation seen through the base path", func() bool { return len(rec.all()) == 1 })
	f.stop()
	waitFor(t, "unreachable", func() bool { return len(rec.all()) == 2 })
	a := rec.all()[1]
	if strings.Contains(a.Subtitle+string(a.Details), "hunter2") {
		t.Errorf("password in activity: %q %s", a.Subtitle, a.Details)
	}
}

// Status is what the last poll saw: reachable, and how many prompts run and
// wait. It asks ComfyUI nothing itself.
func TestStatusFromLastPoll(t *testing.T) {
	checkNoLeaks(t)
	f := newFakeComfy(t)
	f.noWS = true
	w, err := New(Config{URL: f.url(), Recorder: &recorder{}, Prompts: newPromptStore(), PollInterval: 20 * time.Millisecond, MaxBackoff: 40 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Status(); got != (Status{Watching: true}) {
		t.Fatalf("before the first poll: %+v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "reachable", func() bool { return w.Status().Reachable })
	f.run("p1", nil)
	f.queue("p2")
	f.queue("p3")
	waitFor(t, "one running, two waiting", func() bool {
		return w.Status() == Status{Watching: true, Reachable: true, QueueRunning: 1, QueuePending: 2}
	})
	before := f.hits()
	for range 100 {
		w.Status()
	}
	if f.hits() > before+5 { // the poll loop's own requests only: 20 ms apart
		t.Fatalf("Status made requests: %d polls during 100 calls", f.hits()-before)
	}

	f.stop()
	waitFor(t, "unreachable", func() bool { return w.Status() == Status{Watching: true} })
}

func TestStatusWhenOff(t *testing.T) {
	w, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Status(); got != (Status{}) {
		t.Fatalf("watcher off: %+v, want nothing watched", got)
	}
}
