package downloader

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"dashboard/model"
)

// A subfolder of the models folder that is a symbolic link to somewhere
// else must not let a download write there: every write goes through the
// models folder's os.Root.
func TestSymlinkOutOfModelsRefused(t *testing.T) {
	data := randomBytes(100_000, 40)
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, data, serveOpts{})
	}))
	defer srv.Close()
	yml := onePreset("P", "loras/x.safetensors", hfURL("x.safetensors"), "") + `  INSIDE:
    files: [{path: "linked/y.bin", url: "` + hfURL("y.bin") + `"}]
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	outside := t.TempDir()
	if err := os.MkdirAll(filepath.Join(e.models, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(e.models, "loras")); err != nil {
		t.Fatal(err)
	}
	// A link that stays inside the models folder is fine.
	if err := os.Symlink("real", filepath.Join(e.models, "linked")); err != nil {
		t.Fatal(err)
	}

	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeDisk ||
		!strings.Contains(d.Error.Message, "loras/x.safetensors") || !strings.Contains(d.Error.Message, "outside the models folder") {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	entries, err := os.ReadDir(outside)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("the download wrote outside the models folder: %v", entries)
	}
	if d := e.wait(e.install("INSIDE").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("a link inside the models folder: %+v %+v", d, d.Error)
	}
	if got, err := os.ReadFile(filepath.Join(e.models, "real/y.bin")); err != nil || len(got) != len(data) {
		t.Errorf("real/y.bin: %d bytes, %v", len(got), err)
	}
}
