package server_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"dashboard/downloader"
)

// sumOf is the sha256 of what the fake HuggingFace serves at urlPath.
func sumOf(urlPath string) string {
	s := sha256.Sum256(fileBytes(urlPath, 256<<10))
	return hex.EncodeToString(s[:])
}

// sharedPresets has two presets writing one path with different files
// (different sha256), and two more writing another path from two mirrors,
// one without a sha256 (one file, as in the pods' real presets.yaml).
func sharedPresets() string {
	return `presets:
  VAE_A:
    name: VAE A
    files:
    - path: vae/vae.safetensors
      url: https://huggingface.co/org/a/resolve/main/vae.safetensors
      sha256: ` + sumOf("/org/a/resolve/main/vae.safetensors") + `
  VAE_B:
    name: VAE B
    files:
    - path: vae/vae.safetensors
      url: https://huggingface.co/org/b/resolve/main/vae.safetensors
      sha256: ` + sumOf("/org/b/resolve/main/vae.safetensors") + `
  SLOW_A:
    name: Slow A
    files:
    - path: vae/slow.safetensors
      url: https://huggingface.co/org/a/resolve/main/slow-vae.safetensors
      sha256: ` + strings.Repeat("a", 64) + `
  SLOW_B:
    name: Slow B
    files:
    - path: vae/slow.safetensors
      url: https://huggingface.co/org/b/resolve/main/slow-vae.safetensors
      sha256: ` + strings.Repeat("b", 64) + `
  CLIP_MIRROR_1:
    name: CLIP one
    files:
    - path: text_encoders/clip_l.safetensors
      url: https://huggingface.co/org/one/resolve/main/clip_l.safetensors
      sha256: ` + sumOf("/org/one/resolve/main/clip_l.safetensors") + `
  CLIP_MIRROR_2:
    name: CLIP two
    files:
    - path: text_encoders/clip_l.safetensors
      url: https://huggingface.co/org/two/resolve/main/clip_l.safetensors
`
}

func TestTwoPresetsOnePath(t *testing.T) {
	models, data := t.TempDir(), t.TempDir()
	e := start(t, options{presets: sharedPresets(), modelsDir: models, dir: data})
	c := e.dial(t, nil)
	var snap struct {
		Presets downloader.PresetList `json:"presets"`
	}
	if err := json.Unmarshal(c.next(t, "snapshot", 2*time.Second).Data, &snap); err != nil {
		t.Fatal(err)
	}

	// Both sharings are warnings, in the list and the frame; nothing is an error.
	var list downloader.PresetList
	e.call(t, "GET", "/api/presets", "", &list)
	if list.Error != nil || len(list.Presets) != 6 {
		t.Fatalf("presets: %d, error %v", len(list.Presets), list.Error)
	}
	for _, l := range []downloader.PresetList{list, snap.Presets} {
		all := strings.Join(l.Warnings, "\n")
		for _, want := range []string{"vae/vae.safetensors", "VAE_A", "VAE_B", "text_encoders/clip_l.safetensors", "CLIP_MIRROR_1", "CLIP_MIRROR_2", "sha256"} {
			if !strings.Contains(all, want) {
				t.Fatalf("warnings lack %q: %q", want, l.Warnings)
			}
		}
	}

	// A real conflict: after A, B is neither installed nor installable.
	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/presets/VAE_A/install", "", &d); status != 202 {
		t.Fatalf("install A: %d %s", status, raw)
	}
	waitDownload(t, c, d.ID, "completed", 10*time.Second)
	checkConflict := func(e *env) {
		t.Helper()
		var a, b downloader.Preset
		e.call(t, "GET", "/api/presets/VAE_A", "", &a)
		e.call(t, "GET", "/api/presets/VAE_B", "", &b)
		if a.Status != "installed" || b.Status == "installed" || b.Files[0].Installed {
			t.Fatalf("after installing A: A %s, B %s (file installed %v): B holds A's bytes", a.Status, b.Status, b.Files[0].Installed)
		}
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		status, _ := e.call(t, "POST", "/api/presets/VAE_B/install", "", &env)
		if status != 409 || env.Error.Code != "path_conflict" || !strings.Contains(env.Error.Message, "VAE_A") || !strings.Contains(env.Error.Message, "vae/vae.safetensors") {
			t.Fatalf("install B over A's file: %d %+v", status, env)
		}
		status, _ = e.call(t, "POST", "/api/presets/VAE_A/install", "", &env)
		if status != 409 || env.Error.Code != "already_installed" {
			t.Fatalf("install A again: %d %+v", status, env)
		}
	}
	checkConflict(e)

	// Which file is in place outlives a restart.
	e.stop()
	again := start(t, options{presets: sharedPresets(), modelsDir: models, dir: data})
	checkConflict(again)

	// While one is being fetched, the other waits its turn.
	ca := again.dial(t, nil)
	ca.next(t, "snapshot", 2*time.Second)
	var slow downloader.Download
	if status, raw := again.call(t, "POST", "/api/presets/SLOW_A/install", "", &slow); status != 202 {
		t.Fatalf("install slow A: %d %s", status, raw)
	}
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if status, _ := again.call(t, "POST", "/api/presets/SLOW_B/install", "", &env); status != 409 || env.Error.Code != "path_conflict" || !strings.Contains(env.Error.Message, "SLOW_A") {
		t.Fatalf("install B while A is fetched: %d %+v", status, env)
	}
	again.call(t, "POST", "/api/downloads/"+itoa(slow.ID)+"/cancel", "", nil)

	// Mirrors without a sha256 on one side are one file.
	if status, raw := again.call(t, "POST", "/api/presets/CLIP_MIRROR_2/install", "", &d); status != 202 {
		t.Fatalf("install mirror 2: %d %s", status, raw)
	}
	waitDownload(t, ca, d.ID, "completed", 10*time.Second)
	var one downloader.Preset
	again.call(t, "GET", "/api/presets/CLIP_MIRROR_1", "", &one)
	if one.Status != "installed" {
		t.Fatalf("the mirror's twin is %s, want installed", one.Status)
	}
	if status, _ := again.call(t, "POST", "/api/presets/CLIP_MIRROR_1/install", "", &env); status != 409 || env.Error.Code != "already_installed" {
		t.Fatalf("install the twin: %d %+v", status, env)
	}
}
