package server_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"dashboard/downloader"
	"dashboard/model"
)

const testPresets = `presets:
  PUBLIC:
    name: Public Model
    category: Image Generation
    type: image
    download_size: 512KB
    files:
    - path: checkpoints/public-a.safetensors
      url: https://huggingface.co/org/public/resolve/main/public-a.safetensors
      size: 262144
    - path: vae/public-b.safetensors
      url: https://huggingface.co/org/public/resolve/main/public-b.safetensors
      size: 256KB
  GATED:
    name: Gated Model
    category: Image Generation
    type: image
    gated: true
    files:
    - path: checkpoints/gated.safetensors
      url: https://huggingface.co/org/gated/resolve/main/gated.safetensors
      size: 262144
  SLOW:
    name: Slow Model
    category: Video Generation
    type: video
    files:
    - path: checkpoints/slow-one.safetensors
      url: https://huggingface.co/org/public/resolve/main/slow-one.safetensors
      size: 4MB
`

// waitDownload reads download frames until one for id has status want.
func waitDownload(t *testing.T, c *wsClient, id int64, want model.DownloadStatus, within time.Duration) downloader.Download {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		f := c.next(t, "download", time.Until(deadline))
		var d downloader.Download
		if err := json.Unmarshal(f.Data, &d); err != nil {
			t.Fatal(err)
		}
		if d.ID == id && d.Status == want {
			return d
		}
		if d.ID == id && (d.Status == "failed") && want != "failed" {
			t.Fatalf("download %d failed: %+v", id, d.Error)
		}
	}
	t.Fatalf("download %d never became %s", id, want)
	return downloader.Download{}
}

func TestInstallFlowOverHTTPAndWebSocket(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{presets: testPresets, modelsDir: models})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)

	var list struct {
		Presets []downloader.Preset `json:"presets"`
		Error   *string             `json:"error"`
	}
	e.call(t, "GET", "/api/presets", "", &list)
	if len(list.Presets) != 3 || list.Error != nil {
		t.Fatalf("presets: %+v", list)
	}

	// A gated preset with no token: 403 at once, nothing queued.
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if status, _ := e.call(t, "POST", "/api/presets/GATED/install", "", &env); status != 403 || env.Error.Code != "hf_token_required" {
		t.Fatalf("gated without token: %d %+v", status, env)
	}

	// A public preset installs, live.
	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/presets/PUBLIC/install", "", &d); status != 202 || d.Status != "queued" {
		t.Fatalf("install: %d %s", status, raw)
	}
	done := waitDownload(t, c, d.ID, "completed", 10*time.Second)
	if done.FilesCompleted != 2 || done.FilesTotal != 2 {
		t.Fatalf("completed download %+v", done)
	}
	for _, p := range []string{"checkpoints/public-a.safetensors", "vae/public-b.safetensors"} {
		got, err := os.ReadFile(filepath.Join(models, p))
		if err != nil || !bytes.Equal(got, fileBytes("/org/public/resolve/main/"+filepath.Base(p), 256<<10)) {
			t.Fatalf("%s on disk is wrong (%v)", p, err)
		}
	}
	var p downloader.Preset
	e.call(t, "GET", "/api/presets/PUBLIC", "", &p)
	if p.Status != "installed" {
		t.Fatalf("preset after install: %+v", p)
	}
	if status, _ := e.call(t, "POST", "/api/downloads/"+itoa(d.ID)+"/cancel", "", &env); status != 409 || env.Error.Code != "already_finished" {
		t.Fatalf("cancel finished: %d %+v", status, env)
	}
	if status, _ := e.call(t, "POST", "/api/downloads/"+itoa(d.ID)+"/retry", "", &env); status != 409 || env.Error.Code != "not_retryable" {
		t.Fatalf("retry completed: %d %+v", status, env)
	}

	// The token saved in settings is what the downloader uses.
	if status, raw := e.call(t, "POST", "/api/settings/hf-token", `{"token":"`+goodToken+`"}`, nil); status != 200 {
		t.Fatalf("save token: %d %s", status, raw)
	}
	var g downloader.Download
	if status, raw := e.call(t, "POST", "/api/presets/GATED/install", "", &g); status != 202 {
		t.Fatalf("gated with token: %d %s", status, raw)
	}
	waitDownload(t, c, g.ID, "completed", 10*time.Second)

	// Cancel mid-file: the .part stays for a retry, which queues a new
	// download that completes.
	var s downloader.Download
	e.call(t, "POST", "/api/presets/SLOW/install", "", &s)
	if status, _ := e.call(t, "POST", "/api/presets/SLOW/install", "", &env); status != 409 || env.Error.Code != "already_queued" {
		t.Fatalf("second install of a running preset: %d %+v", status, env)
	}
	for {
		f := c.next(t, "download", 10*time.Second)
		var x downloader.Download
		json.Unmarshal(f.Data, &x)
		if x.ID == s.ID && x.BytesDone > 0 {
			break
		}
	}
	var cancelled downloader.Download
	if status, raw := e.call(t, "POST", "/api/downloads/"+itoa(s.ID)+"/cancel", "", &cancelled); status != 200 || cancelled.Status != "cancelled" {
		t.Fatalf("cancel: %d %s", status, raw)
	}
	part := filepath.Join(models, "checkpoints/slow-one.safetensors.part")
	if _, err := os.Stat(part); err != nil {
		t.Fatalf("the .part is gone after a cancel, so a retry cannot resume: %v", err)
	}
	var again downloader.Download
	if status, raw := e.call(t, "POST", "/api/downloads/"+itoa(s.ID)+"/retry", "", &again); status != 202 || again.ID == s.ID {
		t.Fatalf("retry: %d %s", status, raw)
	}
	waitDownload(t, c, again.ID, "completed", 15*time.Second)

	var q struct{ Downloads []downloader.Download }
	e.call(t, "GET", "/api/downloads", "", &q)
	if len(q.Downloads) != 4 {
		t.Fatalf("live queue has %d downloads, want 4", len(q.Downloads))
	}
	var hist struct {
		History    []model.DownloadRecord `json:"history"`
		NextBefore *int64                 `json:"next_before"`
	}
	e.call(t, "GET", "/api/downloads/history?limit=3", "", &hist)
	if len(hist.History) != 3 || hist.NextBefore == nil || hist.History[0].ID != again.ID || hist.History[0].Status != "completed" || hist.History[1].Status != "cancelled" {
		t.Fatalf("history page: %+v", hist)
	}
	e.call(t, "GET", "/api/downloads/history?limit=3&before="+itoa(*hist.NextBefore), "", &hist)
	if len(hist.History) != 1 || hist.History[0].ID != d.ID || hist.NextBefore != nil {
		t.Fatalf("history page 2: %+v", hist)
	}
}

// The presets and their install state are pushed: with the snapshot, on
// every change of a download's state and on every edit of presets.yaml. A
// download's activity goes out after the download frame it follows.
func TestPresetsArePushedAndActivityFollowsItsDownload(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{presets: testPresets, modelsDir: models})
	c := e.dial(t, nil)
	var snap struct {
		Presets downloader.PresetList `json:"presets"`
	}
	if err := json.Unmarshal(c.next(t, "snapshot", 2*time.Second).Data, &snap); err != nil {
		t.Fatal(err)
	}
	if st := presetStatus(snap.Presets, "PUBLIC"); st != "missing" || len(snap.Presets.Presets) != 3 {
		t.Fatalf("snapshot presets: PUBLIC is %q, %d presets", st, len(snap.Presets.Presets))
	}

	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/presets/PUBLIC/install", "", &d); status != 202 {
		t.Fatalf("install: %d %s", status, raw)
	}
	// Read every frame until the presets say PUBLIC is installed.
	var seen []string // "download:<status>", "activity:<status>", "presets:<PUBLIC's status>"
	deadline := time.After(10 * time.Second)
	for len(seen) == 0 || seen[len(seen)-1] != "presets:installed" {
		var f frame
		select {
		case f = <-c.frames:
		case <-deadline:
			t.Fatalf("PUBLIC never showed installed in a presets frame; frames: %v", seen)
		}
		switch f.Type {
		case "download":
			var x downloader.Download
			json.Unmarshal(f.Data, &x)
			if x.ID == d.ID && (len(seen) == 0 || seen[len(seen)-1] != "download:"+string(x.Status)) {
				seen = append(seen, "download:"+string(x.Status))
			}
		case "activity":
			var a model.Activity
			json.Unmarshal(f.Data, &a)
			seen = append(seen, "activity:"+string(a.Status))
		case "presets":
			var l downloader.PresetList
			json.Unmarshal(f.Data, &l)
			seen = append(seen, "presets:"+presetStatus(l, "PUBLIC"))
		}
	}
	pos := func(s string) int {
		for i, v := range seen {
			if v == s {
				return i
			}
		}
		t.Fatalf("no %s frame; frames: %v", s, seen)
		return -1
	}
	if !(pos("download:queued") < pos("presets:queued") &&
		pos("download:downloading") < pos("activity:started") &&
		pos("download:downloading") < pos("presets:downloading") &&
		pos("download:completed") < pos("activity:completed") &&
		pos("activity:completed") < pos("presets:installed")) {
		t.Fatalf("frames out of order: %v", seen)
	}

	// An edit of presets.yaml reaches the client without it asking.
	edited := testPresets + `  ADDED:
    name: Added Later
    files:
    - path: loras/added.safetensors
      url: https://huggingface.co/org/public/resolve/main/added.safetensors
      size: 1024
`
	if err := os.WriteFile(e.PresetsFile, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		var l downloader.PresetList
		if err := json.Unmarshal(c.next(t, "presets", 10*time.Second).Data, &l); err != nil {
			t.Fatal(err)
		}
		if presetStatus(l, "ADDED") == "missing" {
			break
		}
	}
}

func presetStatus(l downloader.PresetList, id string) string {
	for _, p := range l.Presets {
		if p.ID == id {
			return p.Status
		}
	}
	return ""
}
