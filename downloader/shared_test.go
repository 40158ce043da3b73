package downloader

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"dashboard/model"
)

func TestSharedPaths(t *testing.T) {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	file := func(path, url, sum string) PresetFile { return PresetFile{Path: path, URL: url, sha256: sum} }
	tests := []struct {
		name      string
		presets   map[string][]PresetFile
		conflicts []string
		warn      []string // substrings, one warning each, in order
	}{
		{"alone", map[string][]PresetFile{"A": {file("p", "u1", a)}, "B": {file("q", "u2", b)}}, nil, nil},
		{"same file from the same url", map[string][]PresetFile{"A": {file("p", "u", "")}, "B": {file("p", "u", "")}}, nil, nil},
		{"same sha from two mirrors", map[string][]PresetFile{"A": {file("p", "u1", a)}, "B": {file("p", "u2", a)}}, nil, nil},
		{"mirrors, one without sha", map[string][]PresetFile{"A": {file("p", "u1", a)}, "B": {file("p", "u2", "")}}, nil,
			[]string{`p is written by presets "A" and "B" from different URLs`}},
		{"mirrors, none with sha", map[string][]PresetFile{"A": {file("p", "u1", "")}, "B": {file("p", "u2", "")}, "C": {file("p", "u1", "")}}, nil,
			[]string{`presets "A", "B" and "C"`}},
		{"different sha", map[string][]PresetFile{"A": {file("p", "u1", a)}, "B": {file("p", "u2", b)}, "C": {file("p", "u3", "")}}, []string{"p"},
			[]string{`p is written by preset "A" (sha256 aaaaaaaaaaaa…) and preset "B" (sha256 bbbbbbbbbbbb…) with different files`}},
		{"two paths, sorted", map[string][]PresetFile{"A": {file("z", "u1", a), file("m", "v1", "")}, "B": {file("z", "u2", b), file("m", "v2", "")}}, []string{"z"},
			[]string{"m is written", "z is written"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := map[string]Preset{}
			for id, files := range tt.presets {
				ps[id] = Preset{ID: id, Files: files}
			}
			conflicts, warnings := sharedPaths(ps)
			var got []string
			for p := range conflicts {
				got = append(got, p)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.conflicts) {
				t.Errorf("conflicts %v, want %v", got, tt.conflicts)
			}
			if len(warnings) != len(tt.warn) {
				t.Fatalf("warnings %q, want %d", warnings, len(tt.warn))
			}
			for i, w := range tt.warn {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %d = %q, want it to contain %q", i, warnings[i], w)
				}
			}
		})
	}
}

// The pods' real presets.yaml shares five paths between mirrors of one
// model, none with a sha256: they load with a warning each, never an error.
func TestSeedSharedPathsAreWarnings(t *testing.T) {
	seed, err := os.ReadFile(filepath.Join("testdata", "presets-seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "http://127.0.0.1:1", string(seed), envOpts{noRun: true})
	l := e.m.PresetList()
	if l.Error != nil || len(l.Presets) != 56 {
		t.Fatalf("seed: %d presets, error %v", len(l.Presets), l.Error)
	}
	var shared []string
	for _, w := range l.Warnings {
		if strings.Contains(w, "Add sha256") {
			shared = append(shared, w)
		}
		if strings.Contains(w, "path_conflict") {
			t.Errorf("the seed has no conflict, yet: %s", w)
		}
	}
	want := []string{"checkpoints/v1-5-pruned-emaonly-fp16.safetensors", "text_encoders/clip_g.safetensors", "text_encoders/clip_l.safetensors", "text_encoders/t5xxl_fp16.safetensors", "vae/ae.safetensors"}
	if len(shared) != len(want) {
		t.Fatalf("%d shared-path warnings, want %d: %q", len(shared), len(want), shared)
	}
	for i, p := range want {
		if !strings.HasPrefix(shared[i], p+" ") {
			t.Errorf("warning %d = %q, want one about %s", i, shared[i], p)
		}
	}
}

// memLedger is model_files and corrupt_files in memory, failing on demand
// (a nil map refuses writes).
type memLedger struct {
	mu      sync.Mutex
	files   map[string]model.ModelFile
	corrupt map[string]model.CorruptFile
}

// file is what the ledger holds for path, safe while the downloader runs.
func (l *memLedger) file(path string) model.ModelFile {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.files[path]
}

func (l *memLedger) ModelFiles(context.Context) ([]model.ModelFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []model.ModelFile
	for _, f := range l.files {
		out = append(out, f)
	}
	return out, nil
}

func (l *memLedger) RecordModelFile(_ context.Context, f model.ModelFile) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files == nil {
		return errors.New("read-only")
	}
	l.files[f.Path] = f
	return nil
}

func (l *memLedger) ForgetModelFile(_ context.Context, path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.files == nil {
		return errors.New("read-only")
	}
	delete(l.files, path)
	delete(l.corrupt, path)
	return nil
}

func (l *memLedger) CorruptFiles(context.Context) ([]model.CorruptFile, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []model.CorruptFile
	for _, f := range l.corrupt {
		out = append(out, f)
	}
	return out, nil
}

func (l *memLedger) RecordCorruptFile(_ context.Context, f model.CorruptFile) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.corrupt == nil {
		return errors.New("read-only")
	}
	l.corrupt[f.Path] = f
	return nil
}

func (l *memLedger) ForgetCorruptFile(_ context.Context, path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.corrupt == nil {
		return errors.New("read-only")
	}
	delete(l.corrupt, path)
	return nil
}

// A download that fails after a shared file landed still records it as the
// preset's, once hashed: the preset's retry is no conflict, the other
// preset's install is.
func TestSharedFileOfAFailedDownloadIsStillRecorded(t *testing.T) {
	vaeA, vaeB := randomBytes(1000, 1), randomBytes(1000, 2)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/o/a/resolve/main/vae.safetensors":
			serve(w, r, vaeA, serveOpts{})
		case "/o/b/resolve/main/vae.safetensors":
			serve(w, r, vaeB, serveOpts{})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	yml := `presets:
  A:
    files:
    - path: vae/vae.safetensors
      url: ` + srv.URL + `/o/a/resolve/main/vae.safetensors
      sha256: ` + sha(vaeA) + `
    - path: checkpoints/missing.safetensors
      url: ` + srv.URL + `/o/a/resolve/main/missing.safetensors
  B:
    files:
    - path: vae/vae.safetensors
      url: ` + srv.URL + `/o/b/resolve/main/vae.safetensors
      sha256: ` + sha(vaeB) + `
`
	ledger := &memLedger{files: map[string]model.ModelFile{}}
	e := newEnv(t, srv.URL, yml, envOpts{cfg: func(c *Config) { c.Files = ledger }})
	d, err := e.m.Install(context.Background(), "A")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.wait(d.ID); got.Status != model.DownloadFailed {
		t.Fatalf("A = %s, want failed on its missing file", got.Status)
	}
	if rec := ledger.files["vae/vae.safetensors"]; rec.SHA256 != sha(vaeA) || rec.PresetID != "A" {
		t.Fatalf("the landed file is not recorded as A's: %+v", rec)
	}
	a, _ := e.m.Preset("A")
	if !a.Files[0].Installed || a.Status != PresetPartial {
		t.Fatalf("A after the failure: %+v", a)
	}
	if _, err := e.m.Install(context.Background(), "B"); model.ErrorCode(err) != model.CodePathConflict || !strings.Contains(err.Error(), `"A"`) {
		t.Fatalf("install B over A's file: %v", err)
	}
	d, err = e.m.Install(context.Background(), "A")
	if err != nil {
		t.Fatalf("A's retry: %v", err)
	}
	e.wait(d.ID)

	// Replaced behind the dashboard's back: no longer known to be A's.
	if err := os.WriteFile(filepath.Join(e.models, "vae", "vae.safetensors"), vaeB, 0o644); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.m.Preset("A"); a.Files[0].Installed {
		t.Fatal("a replaced file still counts as A's")
	}
	if _, err := e.m.Install(context.Background(), "B"); model.ErrorCode(err) != model.CodePathConflict || !strings.Contains(err.Error(), "being checked") {
		t.Fatalf("install B over a file of unknown origin: %v", err)
	}
	// The refused install had the file hashed: it is B's.
	waitFor(t, "the file to be identified as B's", func() bool { b, _ := e.m.Preset("B"); return b.Files[0].Installed })
	if rec := ledger.file("vae/vae.safetensors"); rec.PresetID != "B" || rec.SHA256 != sha(vaeB) {
		t.Fatalf("the identified file is not recorded as B's: %+v", rec)
	}
	if a, _ := e.m.Preset("A"); a.Files[0].Installed {
		t.Fatal("B's file counts as A's")
	}
}

// A preset installed while it alone wrote a path keeps its file when
// another preset starts writing that path with a different file: the file
// is hashed once and found to be its own. A file there that matches
// nobody stays in everyone's way, and says so.
func TestPathThatBecomesSharedKeepsItsOwner(t *testing.T) {
	vaeA, vaeB := randomBytes(1000, 3), randomBytes(1000, 4)
	presetA := "presets:\n  A:\n    files:\n    - {path: vae/vae.safetensors, url: \"http://127.0.0.1:1/a\", sha256: " + sha(vaeA) + "}\n"
	presetB := "  B:\n    files:\n    - {path: vae/vae.safetensors, url: \"http://127.0.0.1:1/b\", sha256: " + sha(vaeB) + "}\n"
	ledger := &memLedger{files: map[string]model.ModelFile{}}
	e := newEnv(t, "http://127.0.0.1:1", presetA, envOpts{cfg: func(c *Config) { c.Files = ledger }})
	e.put("vae/vae.safetensors", vaeA) // installed while A was alone: nothing recorded
	if a, _ := e.m.Preset("A"); a.Status != PresetInstalled {
		t.Fatalf("A alone = %s", a.Status)
	}
	if err := os.WriteFile(e.presets, []byte(presetA+presetB), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to be loaded", func() bool { _, ok := e.m.Preset("B"); return ok })
	waitFor(t, "A's file to be identified", func() bool { return ledger.file("vae/vae.safetensors").PresetID == "A" })
	if a, _ := e.m.Preset("A"); a.Status != PresetInstalled {
		t.Fatalf("A after B appeared = %s, want installed", a.Status)
	}
	if _, err := e.m.Install(context.Background(), "A"); model.ErrorCode(err) != model.CodeAlreadyInstalled {
		t.Fatalf("install A: %v, want already_installed", err)
	}
	if _, err := e.m.Install(context.Background(), "B"); model.ErrorCode(err) != model.CodePathConflict || !strings.Contains(err.Error(), `"A"`) {
		t.Fatalf("install B: %v, want path_conflict naming A", err)
	}

	// A file of nobody's, put there by hand.
	if err := os.WriteFile(filepath.Join(e.models, "vae", "vae.safetensors"), []byte("someone else's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.m.Install(context.Background(), "A"); model.ErrorCode(err) != model.CodePathConflict {
		t.Fatalf("install A over an unknown file: %v", err)
	}
	waitFor(t, "the unknown file to be hashed", func() bool {
		_, err := e.m.Install(context.Background(), "A")
		return err != nil && strings.Contains(err.Error(), "matches none")
	})
	for _, id := range []string{"A", "B"} {
		if p, _ := e.m.Preset(id); p.Files[0].Installed {
			t.Fatalf("%s counts an unknown file as its own", id)
		}
	}
}
