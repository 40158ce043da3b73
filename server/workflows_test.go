package server_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	wf, err := os.ReadFile("testdata/01_get_started_text_to_image.json")
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
	var env struct{ Error struct{ Code, Message string } }
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
