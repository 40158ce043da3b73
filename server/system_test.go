package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dashboard/downloader"
	"dashboard/model"
	"dashboard/settings"
	"dashboard/system"
)

func TestSystemEndpoint(t *testing.T) {
	models := t.TempDir()
	if err := os.MkdirAll(filepath.Join(models, "loras"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "loras", "a.safetensors"), make([]byte, 1234), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, options{modelsDir: models, volumeSize: 50e9})
	var raw map[string]json.RawMessage
	if status, body := e.call(t, "GET", "/api/system", "", &raw); status != 200 {
		t.Fatalf("GET /api/system: %d %s", status, body)
	}
	for _, k := range []string{"volume", "models", "gpus", "memory", "cpu", "comfyui"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("no %q in the answer", k)
		}
	}
	if string(raw["gpus"]) == "null" {
		t.Error(`gpus is null, want a list ([] without nvidia-smi)`)
	}
	var s system.System
	e.call(t, "GET", "/api/system", "", &s)
	if s.Volume.Source != system.SourceConfig || s.Volume.TotalBytes != 50e9 || s.Memory.TotalBytes <= 0 || s.CPU.Cores <= 0 {
		t.Fatalf("system = %+v", s)
	}
}

// The frame comes when a client connects, and a file a download lands is
// counted in the next one without waiting for a walk of the folder.
func TestSystemFrameFollowsDownloads(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{presets: testPresets, modelsDir: models, systemEvery: 50 * time.Millisecond})
	c := e.dial(t, nil)
	var snap struct {
		System *system.System `json:"system"`
	}
	if err := json.Unmarshal(c.next(t, "snapshot", 2*time.Second).Data, &snap); err != nil {
		t.Fatal(err)
	}
	var s system.System
	if err := json.Unmarshal(c.next(t, model.FrameSystem, 5*time.Second).Data, &s); err != nil {
		t.Fatal(err)
	}
	// The first walk (of an empty folder) is asked for with the first frame.
	deadline := time.Now().Add(5 * time.Second)
	for s.Models.CountedAt == nil {
		if time.Now().After(deadline) {
			t.Fatal("the models folder was never counted")
		}
		json.Unmarshal(c.next(t, model.FrameSystem, 5*time.Second).Data, &s)
	}
	counted := *s.Models.CountedAt

	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/presets/PUBLIC/install", "", &d); status != 202 {
		t.Fatalf("install: %d %s", status, raw)
	}
	waitDownload(t, c, d.ID, model.DownloadCompleted, 10*time.Second)
	for {
		json.Unmarshal(c.next(t, model.FrameSystem, 5*time.Second).Data, &s)
		if s.Models.Bytes == 512<<10 {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("models after the download: %+v", s.Models)
		}
	}
	if !s.Models.CountedAt.Equal(counted) {
		t.Fatalf("a new walk ran (%v after %v); the download's own news should have counted", s.Models.CountedAt, counted)
	}
	want := map[string]int64{"checkpoints": 256 << 10, "vae": 256 << 10}
	for _, f := range s.Models.Folders {
		if want[f.Name] != f.Bytes || f.Files != 1 {
			t.Errorf("folder %+v", f)
		}
	}
}

func TestNotificationsSetting(t *testing.T) {
	e := start(t, options{})
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if v.Notifications {
		t.Fatal("notifications are on by default")
	}
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	if status, raw := e.call(t, "PATCH", "/api/settings", `{"notifications":true}`, &v); status != 200 || !v.Notifications {
		t.Fatalf("turn on: %d %s", status, raw)
	}
	var fv settings.View
	json.Unmarshal(c.next(t, "settings", 2*time.Second).Data, &fv)
	if !fv.Notifications {
		t.Fatalf("the settings frame says %+v", fv)
	}
	for _, bad := range []string{`{"notifications":"yes"}`, `{"notifications":null}`, `{"notifications":1}`} {
		var env struct{ Error model.Error }
		if status, _ := e.call(t, "PATCH", "/api/settings", bad, &env); status != 400 || env.Error.Code != model.CodeInvalidSetting || env.Error.Message != `Setting "notifications" must be true or false.` {
			t.Errorf("%s: %d %+v", bad, status, env.Error)
		}
	}
	e.call(t, "GET", "/api/settings", "", &v)
	if !v.Notifications {
		t.Fatal("a refused change turned notifications off")
	}
	e.call(t, "PATCH", "/api/settings", `{"notifications":false}`, &v)
	if v.Notifications {
		t.Fatal("could not turn them off")
	}
}

// History rows carry what the history page shows: the preset's name, the
// bytes, how long it took and the error as a code and a sentence.
func TestHistoryRowsForThePage(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{presets: testPresets + `  BROKEN:
    name: Broken Model
    files:
    - path: loras/wrong-size.safetensors
      url: https://huggingface.co/org/public/resolve/main/wrong-size.safetensors
      size: 1000
`, modelsDir: models})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	var ok, bad downloader.Download
	e.call(t, "POST", "/api/presets/PUBLIC/install", "", &ok)
	waitDownload(t, c, ok.ID, model.DownloadCompleted, 10*time.Second)
	if status, raw := e.call(t, "POST", "/api/presets/BROKEN/install", "", &bad); status != 202 {
		t.Fatalf("install BROKEN: %d %s", status, raw)
	}
	defer func() {
		if t.Failed() {
			t.Log(e.Logs.String())
		}
	}()
	failed := waitDownload(t, c, bad.ID, model.DownloadFailed, 10*time.Second)

	var hist struct {
		History []model.DownloadRecord `json:"history"`
	}
	e.call(t, "GET", "/api/downloads/history", "", &hist)
	if len(hist.History) != 2 {
		t.Fatalf("history = %+v", hist)
	}
	b, g := hist.History[0], hist.History[1]
	if g.PresetName != "Public Model" || g.BytesDone != 512<<10 || g.BytesTotal != 512<<10 || g.DurationSeconds == nil || g.Error != nil || g.FilesCompleted != 2 {
		t.Errorf("completed row = %+v", g)
	}
	if b.PresetName != "Broken Model" || b.Status != model.DownloadFailed || b.Error == nil || b.Error.Code != failed.Error.Code || b.Error.Message != failed.Error.Message || b.ErrorMessage != failed.Error.Message {
		t.Errorf("failed row = %+v (error %+v), download error %+v", b, b.Error, failed.Error)
	}
}
