package server_test

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"dashboard/downloader"
)

// encodeURIComponent escapes like the pages' JavaScript does.
func encodeURIComponent(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// Ids that need escaping in a URL are accepted end to end: listed, fetched
// and installed over HTTP with the path the pages build.
func TestPresetIDsThatNeedEscaping(t *testing.T) {
	ids := []string{"MY MODEL", "SD+XL", "A/B", "100%", "Ünïcode"}
	var b strings.Builder
	b.WriteString("presets:\n")
	for i, id := range ids {
		b.WriteString("  \"" + id + "\":\n    name: Model " + id + "\n    files:\n")
		b.WriteString("    - path: checkpoints/odd-" + itoa(int64(i)) + ".safetensors\n")
		b.WriteString("      url: https://huggingface.co/org/public/resolve/main/odd-" + itoa(int64(i)) + ".safetensors\n")
	}
	models := t.TempDir()
	e := start(t, options{presets: b.String(), modelsDir: models})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)

	var list downloader.PresetList
	e.call(t, "GET", "/api/presets", "", &list)
	if len(list.Presets) != len(ids) || list.Error != nil {
		t.Fatalf("presets: %+v", list)
	}
	for i, id := range ids {
		var p downloader.Preset
		if status, raw := e.call(t, "GET", "/api/presets/"+encodeURIComponent(id), "", &p); status != 200 || p.ID != id {
			t.Fatalf("GET %q: %d %s", id, status, raw)
		}
		var d downloader.Download
		if status, raw := e.call(t, "POST", "/api/presets/"+encodeURIComponent(id)+"/install", "", &d); status != 202 || d.PresetID != id {
			t.Fatalf("install %q: %d %s", id, status, raw)
		}
		waitDownload(t, c, d.ID, "completed", 10*time.Second)
		if _, err := os.Stat(filepath.Join(models, "checkpoints", "odd-"+itoa(int64(i))+".safetensors")); err != nil {
			t.Fatalf("%q installed nothing: %v", id, err)
		}
	}
}
