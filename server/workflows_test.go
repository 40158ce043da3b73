package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"dashboard/downloader"
	"dashboard/model"
	"dashboard/server"
	"dashboard/workflows"
)

const workflowPresets = `presets:
  ZIMAGE:
    name: Z-Image Turbo
    files:
    - path: vae/ae.safetensors
      url: https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/vae/ae.safetensors
      size: 335MB
`

func analyze(t *testing.T, e *env, ctype string, body []byte) (int, []workflows.Model, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.URL+"/api/workflows/analyze", bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Models []workflows.Model `json:"models"`
		Error  struct{ Code, Message string }
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out.Models, out.Error.Code
}

func TestWorkflowAnalyze(t *testing.T) {
	models := t.TempDir()
	// The text encoder is already there, in the alias folder ComfyUI also reads.
	if err := os.MkdirAll(filepath.Join(models, "clip"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "clip", "qwen_3_4b.safetensors"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := start(t, options{presets: workflowPresets, modelsDir: models})
	wf, err := os.ReadFile("../workflows/testdata/01_get_started_text_to_image.json")
	if err != nil {
		t.Fatal(err)
	}
	check := func(what string, got []workflows.Model) {
		t.Helper()
		if len(got) != 3 {
			t.Fatalf("%s: %d models: %+v", what, len(got), got)
		}
		te, vae, dm := got[0], got[1], got[2]
		if !te.Present || te.Path != "clip/qwen_3_4b.safetensors" {
			t.Errorf("%s: text encoder %+v", what, te)
		}
		if vae.Present || len(vae.Sources) != 2 || vae.Sources[0].Kind != "preset" || vae.Sources[0].PresetID != "ZIMAGE" || vae.Sources[1].Kind != "url" || vae.Size == nil || *vae.Size != 335_000_000 {
			t.Errorf("%s: vae %+v", what, vae)
		}
		if dm.Present || dm.Directory != "diffusion_models" || len(dm.Sources) != 1 || !strings.HasSuffix(dm.Sources[0].URL, "/z_image_turbo_bf16.safetensors") {
			t.Errorf("%s: diffusion model %+v", what, dm)
		}
	}
	status, got, code := analyze(t, e, "application/json", wf)
	if status != 200 {
		t.Fatalf("json: %d %s", status, code)
	}
	check("json", got)

	status, got, code = analyze(t, e, "image/png", pngWith(t, "workflow", string(wf)))
	if status != 200 {
		t.Fatalf("png: %d %s", status, code)
	}
	check("png", got)

	// Larger than every other route takes, well under this one's limit.
	big := []byte(`{"nodes":[],"extra":{"pad":"` + strings.Repeat("x", 4<<20) + `"}}`)
	if status, _, code = analyze(t, e, "application/json", big); status != 200 {
		t.Fatalf("a 4 MiB workflow: %d %s", status, code)
	}
	e.oversize(t) // other routes keep their 64 KiB
	resp := e.oversizeAt(t, "/api/workflows/analyze", server.WorkflowLimit+1)
	var env struct {
		Error struct{ Code, Message string }
	}
	if json.NewDecoder(resp.Body).Decode(&env); env.Error.Code != "body_too_large" || !strings.Contains(env.Error.Message, "32 MiB") {
		t.Fatalf("over the workflow limit: %+v", env)
	}

	for _, tc := range []struct {
		ctype, body string
		status      int
		code        string
	}{
		{"application/json", `{"nodes":[`, 400, "invalid_workflow"},
		{"application/json", `{"1":{"inputs":{}}}`, 400, "invalid_workflow"},
		{"image/png", "\x89PNG\r\n\x1a\nnonsense", 400, "invalid_workflow"},
		{"text/plain", `{"nodes":[]}`, 415, "unsupported_media_type"},
	} {
		if status, _, code := analyze(t, e, tc.ctype, []byte(tc.body)); status != tc.status || code != tc.code {
			t.Errorf("%s %q: %d %s, want %d %s", tc.ctype, tc.body, status, code, tc.status, tc.code)
		}
	}
}

// pngWith is a small PNG with one tEXt chunk, as ComfyUI writes them.
func pngWith(t *testing.T, key, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 2, 2))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	iend := bytes.LastIndex(b, []byte("IEND")) - 4
	data := append(append([]byte(key), 0), text...)
	var chunk bytes.Buffer
	binary.Write(&chunk, binary.BigEndian, uint32(len(data)))
	chunk.WriteString("tEXt")
	chunk.Write(data)
	binary.Write(&chunk, binary.BigEndian, crc32.ChecksumIEEE(append([]byte("tEXt"), data...)))
	return append(append(append([]byte{}, b[:iend]...), chunk.Bytes()...), b[iend:]...)
}

// The whole flow: analyze the real template, install what is missing as one
// download, watch it over the WebSocket, find everything present.
func TestWorkflowInstallFlow(t *testing.T) {
	models := t.TempDir()
	var otherAuth []string
	var mu sync.Mutex
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		otherAuth = append(otherAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Write(fileBytes(r.URL.Path, 1000))
	}))
	defer other.Close()
	e := start(t, options{modelsDir: models})
	if status, raw := e.call(t, "POST", "/api/settings/hf-token", `{"token":"`+goodToken+`"}`, nil); status != 200 {
		t.Fatalf("save token: %d %s", status, raw)
	}
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	wf, err := os.ReadFile("../workflows/testdata/01_get_started_text_to_image.json")
	if err != nil {
		t.Fatal(err)
	}
	_, found, _ := analyze(t, e, "application/json", wf)
	if len(found) != 3 {
		t.Fatalf("analyzed %+v", found)
	}
	vaePath := "/Comfy-Org/z_image_turbo/resolve/main/split_files/vae/ae.safetensors"
	sum := sha256.Sum256(fileBytes(vaePath, 256<<10))
	type m map[string]string
	req := map[string]any{"name": "01_get_started_text_to_image", "models": []m{
		{"directory": found[0].Directory, "name": found[0].Name, "url": found[0].Sources[0].URL},
		{"directory": found[1].Directory, "name": found[1].Name, "url": found[1].Sources[0].URL, "hash": hex.EncodeToString(sum[:])},
		{"directory": found[2].Directory, "name": found[2].Name, "url": found[2].Sources[0].URL},
		// A file from the gated repo needs the saved token; one from another host gets none.
		{"directory": "loras", "name": "gated.safetensors", "url": "https://huggingface.co/org/gated/resolve/main/gated.safetensors"},
		{"directory": "loras", "name": "elsewhere.safetensors", "url": other.URL + "/files/elsewhere.safetensors?sig=secret"},
	}}
	body, _ := json.Marshal(req)
	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/workflows/install", string(body), &d); status != 202 || d.PresetID != "workflow:01_get_started_text_to_image" || d.FilesTotal != 5 {
		t.Fatalf("install: %d %s", status, raw)
	}
	done := waitDownload(t, c, d.ID, "completed", 20*time.Second)
	if done.FilesCompleted != 5 {
		t.Fatalf("completed %+v", done)
	}
	if got, err := os.ReadFile(filepath.Join(models, "vae", "ae.safetensors")); err != nil || !bytes.Equal(got, fileBytes(vaePath, 256<<10)) {
		t.Fatalf("vae on disk: %v", err)
	}
	mu.Lock()
	if len(otherAuth) == 0 || slices.ContainsFunc(otherAuth, func(a string) bool { return a != "" }) {
		t.Errorf("the other host saw Authorization %q", otherAuth)
	}
	mu.Unlock()
	if strings.Contains(e.Logs.String(), "sig=secret") {
		t.Error("a URL's query reached the log")
	}
	_, found, _ = analyze(t, e, "application/json", wf)
	for _, f := range found {
		if !f.Present {
			t.Errorf("%s not present after the install", f.Path)
		}
	}
	var env struct {
		Error struct{ Code, Message string }
	}
	if status, _ := e.call(t, "POST", "/api/workflows/install", string(body), &env); status != 409 || env.Error.Code != "already_installed" {
		t.Fatalf("a second install: %d %+v", status, env)
	}
	// A download from a workflow can be retried like a preset's.
	if status, _ := e.call(t, "POST", "/api/downloads/"+itoa(d.ID)+"/retry", "", &env); status != 409 || env.Error.Code != "not_retryable" {
		t.Fatalf("retry of a completed workflow download: %d %+v", status, env)
	}
}

func TestWorkflowInstallRefusesBadModels(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{modelsDir: models})
	for _, tc := range []struct{ name, body, says string }{
		{"climbs out", `{"name":"w","models":[{"directory":"loras","name":"../../../etc/cron.d/x","url":"https://h/x"}]}`, "not a file inside the models folder"},
		{"absolute", `{"name":"w","models":[{"directory":"/etc","name":"x","url":"https://h/x"}]}`, "not a file inside the models folder"},
		{"no folder", `{"name":"w","models":[{"directory":"","name":"x","url":"https://h/x"}]}`, "not a file inside the models folder"},
		{"not http", `{"name":"w","models":[{"directory":"loras","name":"x","url":"file:///etc/passwd"}]}`, "no http(s) URL"},
		{"no url", `{"name":"w","models":[{"directory":"loras","name":"x","url":""}]}`, "no http(s) URL"},
		{"bad hash", `{"name":"w","models":[{"directory":"loras","name":"x","url":"https://h/x","hash":"abc"}]}`, "not a SHA-256"},
		{"nothing", `{"name":"w","models":[]}`, "nothing to install"},
	} {
		var env struct {
			Error struct{ Code, Message string }
		}
		status, raw := e.call(t, "POST", "/api/workflows/install", tc.body, &env)
		if status != 400 || env.Error.Code != "invalid_workflow" || !strings.Contains(env.Error.Message, tc.says) {
			t.Errorf("%s: %d %s", tc.name, status, raw)
		}
	}
	var q struct{ Downloads []downloader.Download }
	e.call(t, "GET", "/api/downloads", "", &q)
	if len(q.Downloads) != 0 {
		t.Fatalf("something was queued: %+v", q.Downloads)
	}
	entries, _ := os.ReadDir(models)
	if len(entries) != 0 {
		t.Fatalf("the models folder was written: %v", entries)
	}
}

// A workflow's hash that does not match what arrives fails the file.
func TestWorkflowInstallChecksTheHash(t *testing.T) {
	e := start(t, options{modelsDir: t.TempDir()})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	body := `{"name":"w","models":[{"directory":"vae","name":"ae.safetensors","url":"https://huggingface.co/org/repo/resolve/main/ae.safetensors","hash":"` + strings.Repeat("0", 64) + `"}]}`
	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/workflows/install", body, &d); status != 202 {
		t.Fatalf("install: %d %s", status, raw)
	}
	failed := waitDownload(t, c, d.ID, "failed", 10*time.Second)
	if failed.Error == nil || failed.Error.Code != "checksum_mismatch" {
		t.Fatalf("download %+v", failed)
	}
	// Retry queues the same files again, under the same workflow.
	var again downloader.Download
	if status, raw := e.call(t, "POST", "/api/downloads/"+itoa(d.ID)+"/retry", "", &again); status != 202 || again.PresetID != "workflow:w" || again.ID == d.ID {
		t.Fatalf("retry: %d %s", status, raw)
	}
	if failed := waitDownload(t, c, again.ID, "failed", 10*time.Second); failed.Error == nil || failed.Error.Code != "checksum_mismatch" {
		t.Fatalf("retried download %+v", failed)
	}
}

// Two installs under one workflow name (ComfyUI names every image
// ComfyUI_00001_.png): the second, refused while the first downloads, must
// not change what a retry of the first fetches.
func TestWorkflowRetryFetchesItsOwnFiles(t *testing.T) {
	models := t.TempDir()
	e := start(t, options{modelsDir: models})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	const hf = "https://huggingface.co/org/repo/resolve/main/"
	first := `{"name":"ComfyUI_00001_","models":[{"directory":"loras","name":"slow-first-A.safetensors","url":"` + hf + `slow-first-A.safetensors"}]}`
	other := `{"name":"ComfyUI_00001_","models":[{"directory":"loras","name":"other-B.safetensors","url":"` + hf + `other-B.safetensors"}]}`
	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/workflows/install", first, &d); status != 202 {
		t.Fatalf("install: %d %s", status, raw)
	}
	var env struct {
		Error struct{ Code, Message string }
	}
	if status, raw := e.call(t, "POST", "/api/workflows/install", other, &env); status != 409 || env.Error.Code != "already_queued" {
		t.Fatalf("the second install: %d %s", status, raw)
	}
	if status, raw := e.call(t, "POST", "/api/downloads/"+itoa(d.ID)+"/cancel", "", nil); status != 200 {
		t.Fatalf("cancel: %d %s", status, raw)
	}
	var again downloader.Download
	if status, raw := e.call(t, "POST", "/api/downloads/"+itoa(d.ID)+"/retry", "", &again); status != 202 {
		t.Fatalf("retry: %d %s", status, raw)
	}
	waitDownload(t, c, again.ID, "completed", 20*time.Second)
	if _, err := os.Stat(filepath.Join(models, "loras", "slow-first-A.safetensors")); err != nil {
		t.Errorf("the retry did not fetch the first install's file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(models, "loras", "other-B.safetensors")); err == nil {
		t.Error("the retry fetched the refused install's file")
	}
	// The retry's own retry fetches the same files again.
	if status, raw := e.call(t, "POST", "/api/downloads/"+itoa(again.ID)+"/retry", "", &env); status != 409 || env.Error.Code != "not_retryable" {
		t.Fatalf("retry of a completed download: %d %s", status, raw)
	}
}

// A workflow naming a file in one alias folder (unet/) that a preset lists
// in the other (diffusion_models/), from the same URL: the install keeps
// the preset's checksum and size, and puts the file where the preset has it.
func TestWorkflowInstallKeepsAnAliasPresetsChecksum(t *testing.T) {
	const url = "https://huggingface.co/org/repo/resolve/main/flux1-dev.safetensors"
	for _, tc := range []struct {
		name, sha string
		want      model.DownloadStatus
	}{
		{"a wrong checksum fails", strings.Repeat("0", 64), "failed"},
		{"the right one lands where the preset has it", func() string {
			s := sha256.Sum256(fileBytes("/org/repo/resolve/main/flux1-dev.safetensors", 256<<10))
			return hex.EncodeToString(s[:])
		}(), "completed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			models := t.TempDir()
			presets := "presets:\n  FLUX:\n    name: Flux dev\n    files:\n    - path: diffusion_models/flux1-dev.safetensors\n      url: " + url + "\n      size: 262144\n      sha256: " + tc.sha + "\n"
			e := start(t, options{modelsDir: models, presets: presets})
			c := e.dial(t, nil)
			c.next(t, "snapshot", 2*time.Second)
			body := `{"name":"flux","models":[{"directory":"unet","name":"flux1-dev.safetensors","url":"` + url + `"}]}`
			var d downloader.Download
			if status, raw := e.call(t, "POST", "/api/workflows/install", body, &d); status != 202 {
				t.Fatalf("install: %d %s", status, raw)
			}
			if d.BytesTotal != 256<<10 {
				t.Errorf("bytes_total = %d, want the preset's size", d.BytesTotal)
			}
			got := waitDownload(t, c, d.ID, tc.want, 10*time.Second)
			if tc.want == "failed" {
				if got.Error == nil || got.Error.Code != "checksum_mismatch" {
					t.Fatalf("download %+v", got)
				}
				return
			}
			if _, err := os.Stat(filepath.Join(models, "diffusion_models", "flux1-dev.safetensors")); err != nil {
				t.Fatalf("not where the preset has it: %v", err)
			}
			var p struct {
				Status string `json:"status"`
			}
			if status, raw := e.call(t, "GET", "/api/presets/FLUX", "", &p); status != 200 || p.Status != downloader.PresetInstalled {
				t.Fatalf("preset after the install: %d %s", status, raw)
			}
		})
	}
}
