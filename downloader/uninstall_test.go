package downloader

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"dashboard/model"
)

// sharingPresets: A and B share shared.bin; A and D write vae.bin with
// different files (sha256 a… and d…); C lists shared.bin too but has
// nothing else.
func sharingPresets(vaeA, vaeD string) string {
	return `presets:
  A:
    name: Preset A
    files:
    - {path: loras/a.bin, url: "http://127.0.0.1:1/a.bin"}
    - {path: clip/shared.bin, url: "http://127.0.0.1:1/shared.bin"}
    - {path: vae/vae.bin, url: "http://127.0.0.1:1/vae-a.bin", sha256: ` + vaeA + `}
    - {path: loras/half.bin, url: "http://127.0.0.1:1/half.bin"}
  B:
    name: Preset B
    files:
    - {path: clip/shared.bin, url: "http://127.0.0.1:1/shared.bin"}
    - {path: loras/b.bin, url: "http://127.0.0.1:1/b.bin"}
  D:
    name: Preset D
    files:
    - {path: vae/vae.bin, url: "http://127.0.0.1:1/vae-d.bin", sha256: ` + vaeD + `}
`
}

// Uninstall removes the preset's own files and its leftovers, keeps and
// names the files another preset has installed, leaves alone a file that is
// another preset's on a path they share, says so in the activity log, tells
// the overview, and a presets frame follows. A dry run answers the same
// and removes nothing.
func TestUninstallKeepsSharedFiles(t *testing.T) {
	vaeD := randomBytes(500, 31)
	ledger := &memLedger{files: map[string]model.ModelFile{}, corrupt: map[string]model.CorruptFile{}}
	files := &fakeModelFiles{}
	e := newEnv(t, "http://127.0.0.1:1", sharingPresets(strings.Repeat("a", 64), sha(vaeD)), envOpts{noRun: true,
		cfg: func(c *Config) { c.Files = ledger; c.ModelFiles = files }})
	a := randomBytes(1000, 32)
	e.put("loras/a.bin", a)
	e.put("clip/shared.bin", []byte("shared"))
	e.put("loras/b.bin", []byte("b"))
	e.put("vae/vae.bin", vaeD)
	e.put("loras/half.bin.part", randomBytes(4096, 33))
	e.put("loras/half.bin.part.state", []byte(`{"version":1}`))
	st, _ := os.Stat(filepath.Join(e.models, "vae/vae.bin"))
	ledger.files["vae/vae.bin"] = model.ModelFile{Path: "vae/vae.bin", SHA256: sha(vaeD), Size: st.Size(), ModTime: st.ModTime(), PresetID: "D"}
	e.m.loadOwners(context.Background())
	e.start()
	if d, _ := e.m.Preset("D"); d.Status != PresetInstalled {
		t.Fatalf("D = %s, want installed", d.Status)
	}
	partSize := func() int64 {
		fi, err := os.Stat(filepath.Join(e.models, "loras/half.bin.part"))
		if err != nil {
			t.Fatal(err)
		}
		return allocatedBytes(fi)
	}()

	want := Uninstalled{
		Deleted:    []string{"loras/a.bin"},
		Kept:       []KeptFile{{Path: "clip/shared.bin", UsedBy: []string{"B"}}},
		FreedBytes: int64(len(a)) + partSize,
		Failed:     []FailedFile{},
	}
	dry, err := e.m.Uninstall(context.Background(), "A", true)
	if err != nil || !reflect.DeepEqual(dry, want) {
		t.Fatalf("dry run = %+v, %v; want %+v", dry, err, want)
	}
	if !exists(filepath.Join(e.models, "loras/a.bin")) || len(e.rec.all()) != 0 {
		t.Fatal("a dry run removed something or wrote activity")
	}

	framesBefore := len(e.pub.all())
	got, err := e.m.Uninstall(context.Background(), "A", false)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("uninstall = %+v, %v; want %+v", got, err, want)
	}
	for rel, want := range map[string]bool{
		"loras/a.bin": false, "loras/half.bin.part": false, "loras/half.bin.part.state": false,
		"clip/shared.bin": true, "loras/b.bin": true, "vae/vae.bin": true,
	} {
		if exists(filepath.Join(e.models, rel)) != want {
			t.Errorf("%s exists = %v, want %v", rel, !want, want)
		}
	}
	files.mu.Lock()
	removed := slices.Clone(files.removed)
	files.mu.Unlock()
	if !slices.Equal(removed, []landedFile{{"loras/a.bin", int64(len(a))}}) {
		t.Errorf("the overview heard %+v", removed)
	}
	if _, ok := ledger.files["vae/vae.bin"]; !ok {
		t.Error("D's record was forgotten")
	}

	acts := e.rec.all()
	if len(acts) != 1 || acts[0].Type != model.ActivityDownload || acts[0].Status != model.ActivityCompleted || acts[0].Title != "Removed Preset A" {
		t.Fatalf("activity = %+v", acts)
	}
	var details struct {
		PresetID   string     `json:"preset_id"`
		Deleted    []string   `json:"deleted"`
		Kept       []KeptFile `json:"kept"`
		FreedBytes int64      `json:"freed_bytes"`
	}
	if err := json.Unmarshal(acts[0].Details, &details); err != nil || details.PresetID != "A" || !slices.Equal(details.Deleted, want.Deleted) || !reflect.DeepEqual(details.Kept, want.Kept) || details.FreedBytes != want.FreedBytes {
		t.Errorf("details = %s", acts[0].Details)
	}
	// The activity frame, then a presets frame that shows the new state.
	var after []frame
	waitFor(t, "the frames", func() bool {
		after = e.pub.all()[framesBefore:]
		return len(after) >= 2
	})
	if after[0].typ != model.FrameActivity || after[1].typ != model.FramePresets {
		t.Fatalf("frames after the uninstall: %s, %s", after[0].typ, after[1].typ)
	}
	for _, p := range after[1].list.Presets {
		switch p.ID {
		case "A":
			if p.Status != PresetPartial || p.Files[0].Installed || !p.Files[1].Installed {
				t.Errorf("A after = %+v", p)
			}
		case "B", "D":
			if p.Status != PresetInstalled {
				t.Errorf("%s after = %s", p.ID, p.Status)
			}
		}
	}

	// Again: what is left is B's, so nothing goes; the file stays named.
	again, err := e.m.Uninstall(context.Background(), "A", false)
	if err != nil || len(again.Deleted) != 0 || len(again.Kept) != 1 || again.FreedBytes != 0 {
		t.Fatalf("second uninstall = %+v, %v", again, err)
	}
	if _, err := e.m.Uninstall(context.Background(), "NOPE", false); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("unknown preset: %v", err)
	}
}

// A partial preset loses what it has: its files in place and the .part of
// the one that was still coming. One with nothing on disk answers empty
// lists and writes nothing.
func TestUninstallPartialAndEmpty(t *testing.T) {
	yml := `presets:
  P:
    name: Partial
    files:
    - {path: checkpoints/one.bin, url: "http://127.0.0.1:1/one.bin"}
    - {path: checkpoints/two.bin, url: "http://127.0.0.1:1/two.bin"}
    - {path: checkpoints/three.bin, url: "http://127.0.0.1:1/three.bin"}
`
	e := newEnv(t, "http://127.0.0.1:1", yml, envOpts{})
	e.put("checkpoints/one.bin", randomBytes(700, 34))
	e.put("checkpoints/two.bin.part", randomBytes(300, 35))
	if p, _ := e.m.Preset("P"); p.Status != PresetPartial {
		t.Fatalf("P = %s, want partial", p.Status)
	}
	got, err := e.m.Uninstall(context.Background(), "P", false)
	if err != nil || !slices.Equal(got.Deleted, []string{"checkpoints/one.bin"}) || len(got.Kept) != 0 || got.FreedBytes < 700+300 {
		t.Fatalf("uninstall = %+v, %v", got, err)
	}
	if exists(filepath.Join(e.models, "checkpoints/one.bin")) || exists(filepath.Join(e.models, "checkpoints/two.bin.part")) {
		t.Fatal("files left behind")
	}
	if p, _ := e.m.Preset("P"); p.Status != PresetMissing {
		t.Fatalf("P after = %s, want missing", p.Status)
	}
	n := len(e.rec.all())
	empty, err := e.m.Uninstall(context.Background(), "P", false)
	if err != nil || empty.Deleted == nil || len(empty.Deleted) != 0 || empty.Kept == nil || len(empty.Kept) != 0 || empty.FreedBytes != 0 {
		t.Fatalf("uninstall of nothing = %#v, %v", empty, err)
	}
	if len(e.rec.all()) != n {
		t.Error("an uninstall that removed nothing wrote activity")
	}
	// A corrupt file goes too: it is the preset's, and nobody's good copy.
	e.put("checkpoints/three.bin", []byte("bad"))
	st, _ := os.Stat(filepath.Join(e.models, "checkpoints/three.bin"))
	e.m.markCorrupt(context.Background(), model.CorruptFile{Path: "checkpoints/three.bin", Size: st.Size(), ModTime: st.ModTime(), Expected: strings.Repeat("c", 64)})
	if got, err := e.m.Uninstall(context.Background(), "P", false); err != nil || !slices.Equal(got.Deleted, []string{"checkpoints/three.bin"}) {
		t.Fatalf("uninstall of a corrupt file = %+v, %v", got, err)
	}
}

// While one of its files is being downloaded (by it, or by another preset
// that shares the path), a preset cannot be removed; nothing is touched.
func TestUninstallBusyDuringDownload(t *testing.T) {
	data := randomBytes(2<<20, 36)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, data, serveOpts{piece: 32 << 10, delay: 20 * time.Millisecond})
	}))
	defer srv.Close()
	yml := `presets:
  SLOW:
    name: Slow
    files:
    - {path: checkpoints/slow.bin, url: "` + hfURL("slow.bin") + `"}
  OTHER:
    name: Other
    files:
    - {path: checkpoints/slow.bin, url: "` + hfURL("slow.bin") + `"}
    - {path: loras/other.bin, url: "` + hfURL("other.bin") + `"}
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	e.put("loras/other.bin", []byte("other"))
	q := e.install("SLOW")
	waitFor(t, "the download under way", func() bool {
		for _, d := range e.m.Downloads() {
			if d.ID == q.ID && d.BytesDone > 0 {
				return true
			}
		}
		return false
	})
	_, err := e.m.Uninstall(context.Background(), "SLOW", false)
	if model.ErrorCode(err) != model.CodeBusy || !strings.Contains(err.Error(), "being installed") {
		t.Fatalf("uninstall during its download: %v", err)
	}
	_, err = e.m.Uninstall(context.Background(), "OTHER", true)
	if model.ErrorCode(err) != model.CodeBusy || !strings.Contains(err.Error(), "checkpoints/slow.bin") || !strings.Contains(err.Error(), `"SLOW"`) {
		t.Fatalf("uninstall of a preset whose file another downloads: %v", err)
	}
	if !exists(filepath.Join(e.models, "loras/other.bin")) || len(e.titles()) != 1 {
		t.Fatalf("a refused uninstall touched something: %q", e.titles())
	}
	e.m.Cancel(q.ID)
}

// A preset file that is a symbolic link to a file elsewhere in the models
// folder: the link goes, what it points to stays, and nothing is freed.
func TestUninstallRemovesALinkNotItsTarget(t *testing.T) {
	e := newEnv(t, "http://127.0.0.1:1", onePreset("L", "checkpoints/linked.bin", "http://127.0.0.1:1/l.bin", ""), envOpts{})
	e.put("shared/real.bin", randomBytes(2000, 37))
	if err := os.MkdirAll(filepath.Join(e.models, "checkpoints"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../shared/real.bin", filepath.Join(e.models, "checkpoints/linked.bin")); err != nil {
		t.Fatal(err)
	}
	got, err := e.m.Uninstall(context.Background(), "L", false)
	if err != nil || !slices.Equal(got.Deleted, []string{"checkpoints/linked.bin"}) || got.FreedBytes != 0 {
		t.Fatalf("uninstall = %+v, %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(e.models, "checkpoints/linked.bin")); !os.IsNotExist(err) {
		t.Errorf("the link is still there: %v", err)
	}
	if !exists(filepath.Join(e.models, "shared/real.bin")) {
		t.Error("the link's target was removed")
	}
}

// ComfyUI's alias folders are often links inside the models folder (clip →
// text_encoders): a preset listing clip/x uses the file another lists as
// text_encoders/x, so removing the other keeps it.
func TestUninstallKeepsAFileAnotherPresetReachesThroughAnAliasFolder(t *testing.T) {
	yml := "presets:\n" +
		"  FLUX:\n    name: FLUX\n    files:\n    - {path: text_encoders/clip_l.bin, url: \"http://127.0.0.1:1/c.bin\"}\n    - {path: vae/ae.bin, url: \"http://127.0.0.1:1/ae.bin\"}\n" +
		"  SD3:\n    name: SD3\n    files:\n    - {path: clip/clip_l.bin, url: \"http://127.0.0.1:1/c.bin\"}\n"
	e := newEnv(t, "http://127.0.0.1:1", yml, envOpts{})
	e.put("text_encoders/clip_l.bin", randomBytes(3000, 38))
	e.put("vae/ae.bin", randomBytes(1000, 39))
	if err := os.Symlink("text_encoders", filepath.Join(e.models, "clip")); err != nil {
		t.Fatal(err)
	}
	if p, _ := e.m.Preset("SD3"); p.Status != PresetInstalled {
		t.Fatalf("SD3 = %s, want installed through the alias folder", p.Status)
	}
	want := Uninstalled{
		Deleted:    []string{"vae/ae.bin"},
		Kept:       []KeptFile{{Path: "text_encoders/clip_l.bin", UsedBy: []string{"SD3"}}},
		FreedBytes: 1000,
		Failed:     []FailedFile{},
	}
	for _, dry := range []bool{true, false} {
		got, err := e.m.Uninstall(context.Background(), "FLUX", dry)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("uninstall (dry run %v) = %+v, %v; want %+v", dry, got, err, want)
		}
	}
	if !exists(filepath.Join(e.models, "text_encoders/clip_l.bin")) {
		t.Fatal("the file SD3 uses through clip/ was removed")
	}
	if p, _ := e.m.Preset("SD3"); p.Status != PresetInstalled {
		t.Fatalf("SD3 after removing FLUX = %s, want installed", p.Status)
	}
}
