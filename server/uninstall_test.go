package server_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"dashboard/downloader"
	"dashboard/model"
	"dashboard/system"
)

// sharingPresets: SDXL and REFINER share a VAE; REFINER's own file has a
// sha256, so a verify can tell it from a damaged copy.
func sharingPresets() string {
	return `presets:
  SDXL:
    name: SDXL Base
    files:
    - path: checkpoints/sdxl.safetensors
      url: https://huggingface.co/org/sdxl/resolve/main/sdxl.safetensors
    - path: vae/sdxl-vae.safetensors
      url: https://huggingface.co/org/sdxl/resolve/main/sdxl-vae.safetensors
  REFINER:
    name: SDXL Refiner
    files:
    - path: vae/sdxl-vae.safetensors
      url: https://huggingface.co/org/sdxl/resolve/main/sdxl-vae.safetensors
    - path: checkpoints/refiner.safetensors
      url: https://huggingface.co/org/refiner/resolve/main/refiner.safetensors
      sha256: ` + sumOf("/org/refiner/resolve/main/refiner.safetensors") + `
  SLOW:
    name: Slow
    files:
    - path: checkpoints/slow-one.safetensors
      url: https://huggingface.co/org/public/resolve/main/slow-one.safetensors
`
}

type apiError struct {
	Error model.Error `json:"error"`
}

// nextSystem reads system frames until cond holds.
func nextSystem(t *testing.T, c *wsClient, what string, cond func(system.System) bool) system.System {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var s system.System
		if err := json.Unmarshal(c.next(t, model.FrameSystem, time.Until(deadline)).Data, &s); err != nil {
			t.Fatal(err)
		}
		if cond(s) {
			return s
		}
	}
	t.Fatalf("no system frame with %s", what)
	return system.System{}
}

// Remove keeps the shared VAE and names who uses it, frees the rest, says
// so in the activity log, and the presets and system frames follow without
// a walk of the folder.
func TestUninstallOverHTTP(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{presets: sharingPresets(), modelsDir: models, systemEvery: 50 * time.Millisecond})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	s := nextSystem(t, c, "a first count", func(s system.System) bool { return s.Models.CountedAt != nil })
	counted := *s.Models.CountedAt

	for _, id := range []string{"SDXL", "REFINER"} {
		var d downloader.Download
		if status, raw := e.call(t, "POST", "/api/presets/"+id+"/install", "", &d); status != 202 || d.Kind != model.KindInstall {
			t.Fatalf("install %s: %d %s", id, status, raw)
		}
		waitDownload(t, c, d.ID, model.DownloadCompleted, 10*time.Second)
	}
	nextSystem(t, c, "three files", func(s system.System) bool { return s.Models.Files == 3 })

	want := downloader.Uninstalled{
		Deleted:    []string{"checkpoints/sdxl.safetensors"},
		Kept:       []downloader.KeptFile{{Path: "vae/sdxl-vae.safetensors", UsedBy: []string{"REFINER"}}},
		FreedBytes: 256 << 10,
		Failed:     []downloader.FailedFile{},
	}
	var dry downloader.Uninstalled
	if status, raw := e.call(t, "POST", "/api/presets/SDXL/uninstall?dry_run=1", "", &dry); status != 200 || !reflect.DeepEqual(dry, want) {
		t.Fatalf("dry run: %d %s", status, raw)
	}
	if _, err := os.Stat(filepath.Join(models, "checkpoints", "sdxl.safetensors")); err != nil {
		t.Fatal("the dry run removed the file")
	}
	var got downloader.Uninstalled
	if status, raw := e.call(t, "POST", "/api/presets/SDXL/uninstall", "", &got); status != 200 || !reflect.DeepEqual(got, want) {
		t.Fatalf("uninstall: %d %s", status, raw)
	}
	var a model.Activity
	json.Unmarshal(c.next(t, model.FrameActivity, 2*time.Second).Data, &a)
	if a.Title != "Removed SDXL Base" || a.Status != model.ActivityCompleted || !strings.Contains(string(a.Details), `"freed_bytes":262144`) {
		t.Fatalf("activity frame = %+v %s", a, a.Details)
	}
	var list downloader.PresetList
	json.Unmarshal(c.next(t, model.FramePresets, 2*time.Second).Data, &list)
	for _, p := range list.Presets {
		if p.ID == "SDXL" && (p.Status != downloader.PresetPartial || p.Files[0].Installed || !p.Files[1].Installed) {
			t.Errorf("SDXL in the presets frame: %+v", p)
		}
		if p.ID == "REFINER" && p.Status != downloader.PresetInstalled {
			t.Errorf("REFINER in the presets frame: %+v", p)
		}
	}
	s = nextSystem(t, c, "two files", func(s system.System) bool { return s.Models.Files == 2 })
	if s.Models.Bytes != 512<<10 || !s.Models.CountedAt.Equal(counted) {
		t.Errorf("models after the uninstall: %+v (a walk ran: %v)", s.Models, !s.Models.CountedAt.Equal(counted))
	}

	for _, tc := range []struct {
		path   string
		status int
		code   model.Code
	}{
		{"/api/presets/NOPE/uninstall", 404, model.CodeNotFound},
		{"/api/presets/SDXL/uninstall?dry_run=maybe", 400, model.CodeInvalidQuery},
		{"/api/presets/NOPE/verify", 404, model.CodeNotFound},
		{"/api/presets/SLOW/verify", 409, model.CodeNotInstalled},
	} {
		var env apiError
		if status, raw := e.call(t, "POST", tc.path, "", &env); status != tc.status || env.Error.Code != tc.code || env.Error.Message == "" {
			t.Errorf("POST %s: %d %s, want %d %s", tc.path, status, raw, tc.status, tc.code)
		}
	}

	// While it downloads, a preset cannot be removed.
	var slow downloader.Download
	e.call(t, "POST", "/api/presets/SLOW/install", "", &slow)
	waitDownload(t, c, slow.ID, model.DownloadRunning, 5*time.Second)
	var env apiError
	if status, raw := e.call(t, "POST", "/api/presets/SLOW/uninstall", "", &env); status != 409 || env.Error.Code != model.CodeBusy {
		t.Fatalf("uninstall while downloading: %d %s", status, raw)
	}
	e.call(t, "POST", "/api/downloads/"+itoa(slow.ID)+"/cancel", "", nil)
}

// A verify shows in the queue like a download, its failure names the file,
// which shows corrupt (after a restart too) until Install repairs it. The
// history keeps the kind.
func TestVerifyOverHTTP(t *testing.T) {
	models, data := t.TempDir(), t.TempDir()
	e := start(t, options{presets: sharingPresets(), modelsDir: models, dir: data})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	var d downloader.Download
	e.call(t, "POST", "/api/presets/REFINER/install", "", &d)
	waitDownload(t, c, d.ID, model.DownloadCompleted, 10*time.Second)

	if status, raw := e.call(t, "POST", "/api/presets/REFINER/verify", "", &d); status != 202 || d.Kind != model.KindVerify || d.Status != model.DownloadQueued {
		t.Fatalf("verify: %d %s", status, raw)
	}
	ok := waitDownload(t, c, d.ID, model.DownloadCompleted, 10*time.Second)
	// The fake HuggingFace states no checksum; the VAE has none in the preset.
	if ok.Kind != model.KindVerify || len(ok.Unverifiable) != 1 || ok.Unverifiable[0] != "vae/sdxl-vae.safetensors" || ok.BytesDone != 256<<10 {
		t.Fatalf("verify = %+v", ok)
	}

	ckpt := filepath.Join(models, "checkpoints", "refiner.safetensors")
	raw, err := os.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	raw[100] ^= 0x10
	if err := os.WriteFile(ckpt, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	e.call(t, "POST", "/api/presets/REFINER/verify", "", &d)
	bad := waitDownload(t, c, d.ID, model.DownloadFailed, 10*time.Second)
	if bad.Error == nil || bad.Error.Code != model.CodeChecksum || !strings.Contains(bad.Error.Message, "checkpoints/refiner.safetensors") {
		t.Fatalf("verify of a flipped byte = %+v", bad.Error)
	}
	var list downloader.PresetList
	json.Unmarshal(c.next(t, model.FramePresets, 2*time.Second).Data, &list)
	checkCorrupt := func(e *env) {
		t.Helper()
		var p downloader.Preset
		e.call(t, "GET", "/api/presets/REFINER", "", &p)
		if p.Status != downloader.PresetPartial || p.Files[1].Installed || !p.Files[1].Corrupt || p.Files[0].Corrupt {
			t.Fatalf("REFINER = %+v", p)
		}
	}
	checkCorrupt(e)
	var hist struct {
		History []model.DownloadRecord `json:"history"`
	}
	e.call(t, "GET", "/api/downloads/history", "", &hist)
	if len(hist.History) != 3 || hist.History[0].Kind != model.KindVerify || hist.History[0].Error.Code != model.CodeChecksum || hist.History[2].Kind != model.KindInstall {
		t.Fatalf("history = %+v", hist.History)
	}

	e.stop()
	again := start(t, options{presets: sharingPresets(), modelsDir: models, dir: data})
	checkCorrupt(again)
	ca := again.dial(t, nil)
	ca.next(t, "snapshot", 2*time.Second)
	if status, raw := again.call(t, "POST", "/api/presets/REFINER/install", "", &d); status != 202 {
		t.Fatalf("repair: %d %s", status, raw)
	}
	waitDownload(t, ca, d.ID, model.DownloadCompleted, 10*time.Second)
	var p downloader.Preset
	again.call(t, "GET", "/api/presets/REFINER", "", &p)
	if p.Status != downloader.PresetInstalled || p.Files[1].Corrupt {
		t.Fatalf("REFINER after the repair = %+v", p)
	}
}
