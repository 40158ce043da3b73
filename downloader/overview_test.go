package downloader

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"dashboard/model"
)

type landedFile struct {
	path string
	size int64
}

type fakeModelFiles struct {
	mu      sync.Mutex
	added   []landedFile
	removed []landedFile
}

func (f *fakeModelFiles) Added(p string, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.added = append(f.added, landedFile{p, size})
}

func (f *fakeModelFiles) Removed(p string, size int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, landedFile{p, size})
}

// Every file that lands is told to the overview, once, with its size; one
// already in place is not. The history row keeps the bytes.
func TestLandedFilesAreToldAndSized(t *testing.T) {
	a, b := randomBytes(300_000, 7), randomBytes(120_000, 8)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/org/repo/resolve/main/a.bin":
			serve(w, r, a, serveOpts{})
		case "/org/repo/resolve/main/b.bin":
			serve(w, r, b, serveOpts{})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	yml := `presets:
  THREE:
    name: Three files
    files:
    - path: checkpoints/a.bin
      url: ` + hfURL("a.bin") + `
    - path: loras/deep/b.bin
      url: ` + hfURL("b.bin") + `
    - path: vae/present.bin
      url: ` + hfURL("present.bin") + `
`
	files := &fakeModelFiles{}
	e := newEnv(t, srv.URL, yml, envOpts{cfg: func(c *Config) { c.ModelFiles = files }})
	if err := os.MkdirAll(filepath.Join(e.models, "vae"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.models, "vae", "present.bin"), []byte("here"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.wait(e.install("THREE").ID)
	if d.Status != model.DownloadCompleted {
		t.Fatalf("download = %+v", d)
	}
	files.mu.Lock()
	got := slices.Clone(files.added)
	files.mu.Unlock()
	want := []landedFile{{"checkpoints/a.bin", 300_000}, {"loras/deep/b.bin", 120_000}}
	if !slices.Equal(got, want) {
		t.Fatalf("told %+v, want %+v", got, want)
	}
	row := e.hist.row(d.ID)
	if row.BytesDone != 420_000 || row.BytesTotal != d.BytesTotal || row.FilesCompleted != 3 || row.Error != nil {
		t.Fatalf("history row = %+v, want 420000 bytes done", row)
	}
}
