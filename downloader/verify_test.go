package downloader

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"dashboard/model"
)

// put writes a file into the models folder, as an install would have.
func (e *env) put(rel string, data []byte) {
	e.t.Helper()
	p := filepath.Join(e.models, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) verify(id string) Download {
	e.t.Helper()
	d, err := e.m.Verify(context.Background(), id)
	if err != nil {
		e.t.Fatalf("verify %s: %v", id, err)
	}
	if d.Kind != model.KindVerify || d.Status != model.DownloadQueued {
		e.t.Fatalf("verify %s answered %+v", id, d)
	}
	return d
}

func (e *env) presetFile(id, rel string) PresetFile {
	e.t.Helper()
	p, ok := e.m.Preset(id)
	if !ok {
		e.t.Fatalf("no preset %s", id)
	}
	for _, f := range p.Files {
		if f.Path == rel {
			return f
		}
	}
	e.t.Fatalf("preset %s lists no %s", id, rel)
	return PresetFile{}
}

// titles are the activity titles written so far, in order.
func (e *env) titles() []string {
	var out []string
	for _, a := range e.rec.all() {
		out = append(out, string(a.Status)+" "+a.Title)
	}
	return out
}

// A sound file verifies against the preset's sha256, with progress like a
// download's: phase "verifying", the bytes hashed, the file being read.
func TestVerifyGoodFile(t *testing.T) {
	data := randomBytes(3<<20, 21)
	yml := onePreset("GOOD", "loras/good.safetensors", "http://127.0.0.1:1/good.safetensors", "") // never asked
	yml = strings.Replace(yml, "size: 1MB", "size: 1MB\n      sha256: "+sha(data), 1)
	e := newEnv(t, "http://127.0.0.1:1", yml, envOpts{})
	e.put("loras/good.safetensors", data)

	q := e.verify("GOOD")
	if q.FilesTotal != 1 || q.BytesTotal != int64(len(data)) {
		t.Fatalf("queued verify = %+v", q)
	}
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || d.Kind != model.KindVerify || d.BytesDone != int64(len(data)) || d.FilesCompleted != 1 || len(d.Corrupt) != 0 || len(d.Unverifiable) != 0 {
		t.Fatalf("verify = %+v", d)
	}
	sawRunning := false
	for _, f := range e.pub.of(q.ID) {
		if f.d.Status == model.DownloadRunning {
			sawRunning = true
			if f.d.Phase == nil || *f.d.Phase != model.PhaseVerifying || f.d.Kind != model.KindVerify {
				t.Errorf("running frame %+v: phase %v", f.d, f.d.Phase)
			}
		}
	}
	if !sawRunning {
		t.Error("no running frame for the verify")
	}
	if got := e.titles(); !slices.Equal(got, []string{"started Verifying Preset GOOD", "completed Verified Preset GOOD"}) {
		t.Errorf("activity = %q", got)
	}
	if row := e.hist.row(q.ID); row.Kind != model.KindVerify || row.Status != model.DownloadCompleted {
		t.Errorf("history row = %+v", row)
	}
	if p, _ := e.m.Preset("GOOD"); p.Status != PresetInstalled || !p.Files[0].Installed || p.Files[0].Corrupt {
		t.Errorf("preset after a good verify: %+v", p)
	}
	// A verify deletes nothing and writes nothing.
	if !bytes.Equal(e.file("loras/good.safetensors"), data) {
		t.Error("the file changed")
	}
	// A second verify of a preset with nothing in place is refused.
	if _, err := e.m.Verify(context.Background(), "NOPE"); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("verify of an unknown preset: %v", err)
	}
	os.Remove(filepath.Join(e.models, "loras/good.safetensors"))
	if _, err := e.m.Verify(context.Background(), "GOOD"); model.ErrorCode(err) != model.CodeNotInstalled {
		t.Errorf("verify with nothing in place: %v", err)
	}
}

// flakyHF serves one file like HuggingFace: X-Linked-Etag names its sha256;
// while wrong is set it sends other bytes and states no checksum, slowly
// while slow is set.
type flakyHF struct {
	data  []byte
	wrong atomic.Bool
	slow  atomic.Bool
}

func (f *flakyHF) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body := f.data
	o := serveOpts{etag: sha(f.data)}
	if f.wrong.Load() {
		body = bytes.Clone(f.data)
		body[len(body)/2] ^= 0xff
		o.noETag = true
	}
	if f.slow.Load() {
		o.piece, o.delay = 64<<10, 30*time.Millisecond
	}
	serve(w, r, body, o)
}

// A flipped byte fails the verify with checksum_mismatch naming the file,
// which then shows corrupt (also after a restart). A repair whose download
// brings wrong bytes leaves the corrupt file untouched; one that brings the
// right bytes replaces it only at the rename, once they are verified.
func TestVerifyFlippedByteThenRepair(t *testing.T) {
	data := randomBytes(2<<20, 22)
	hf := &flakyHF{data: data}
	srv := httptest.NewServer(hf)
	defer srv.Close()
	yml := `presets:
  LORA:
    name: Some LoRA
    files:
    - path: loras/some.safetensors
      url: ` + hfURL("some.safetensors") + `
      size: 2MB
    - path: loras/other.safetensors
      url: ` + hfURL("other.safetensors") + `
      size: 2MB
      sha256: ` + sha(data) + `
`
	ledger := &memLedger{files: map[string]model.ModelFile{}, corrupt: map[string]model.CorruptFile{}}
	files := &fakeModelFiles{}
	e := newEnv(t, srv.URL, yml, envOpts{cfg: func(c *Config) { c.Files = ledger; c.ModelFiles = files }})
	bad := bytes.Clone(data)
	bad[12345] ^= 0x01
	e.put("loras/some.safetensors", bad)
	e.put("loras/other.safetensors", data)

	d := e.wait(e.verify("LORA").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeChecksum ||
		!strings.Contains(d.Error.Message, "loras/some.safetensors") || strings.Contains(d.Error.Message, "other") {
		t.Fatalf("verify = %+v (error %+v)", d, d.Error)
	}
	if !slices.Equal(d.Corrupt, []string{"loras/some.safetensors"}) || d.FilesCompleted != 2 {
		t.Fatalf("verify = %+v", d)
	}
	if got := e.titles(); got[len(got)-1] != "failed Verify failed: Some LoRA" {
		t.Errorf("activity = %q", got)
	}
	checkCorrupt := func(m *Manager) {
		t.Helper()
		p, _ := m.Preset("LORA")
		if p.Status != PresetPartial || p.Files[0].Installed || !p.Files[0].Corrupt || !p.Files[1].Installed || p.Files[1].Corrupt {
			t.Fatalf("preset after the failed verify: %+v", p)
		}
	}
	checkCorrupt(e.m)
	// The presets frame after the verify's end shows it too (frames go
	// out from the event queue, maybe just after the end is seen here).
	var last PresetList
	waitFor(t, "a presets frame showing the corrupt file", func() bool {
		for _, f := range e.pub.all() {
			if f.typ == model.FramePresets {
				last = f.list
			}
		}
		return len(last.Presets) == 1 && last.Presets[0].Files[0].Corrupt
	})
	if rec := ledger.corrupt["loras/some.safetensors"]; rec.Expected != sha(data) || rec.Actual != sha(bad) {
		t.Fatalf("ledger: %+v", rec)
	}
	// A restart still knows.
	// (The same presets file: writing it again would make the running
	// manager reload it, maybe half-written.)
	again := newEnv(t, srv.URL, "", envOpts{dir: e.dir, noRun: true, cfg: func(c *Config) { c.Files = ledger }})
	checkCorrupt(again.m)

	// The repair fetches wrong bytes, and the server states no checksum
	// this time: the one the verify used still stands, so the repair fails
	// and the corrupt file is still there, untouched.
	stat := func() os.FileInfo {
		st, err := os.Stat(filepath.Join(e.models, "loras/some.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	before := stat()
	hf.wrong.Store(true)
	r := e.wait(e.install("LORA").ID)
	if r.Status != model.DownloadFailed || r.Error.Code != model.CodeChecksum || r.FilesTotal != 2 || r.FilesCompleted != 1 {
		t.Fatalf("repair with wrong bytes = %+v (error %+v)", r, r.Error)
	}
	if after := stat(); !bytes.Equal(e.file("loras/some.safetensors"), bad) || !after.ModTime().Equal(before.ModTime()) {
		t.Fatal("a failed repair touched the corrupt file")
	}
	checkCorrupt(e.m)

	// The right bytes, slowly: the corrupt file stays until the rename.
	hf.wrong.Store(false)
	hf.slow.Store(true)
	q := e.install("LORA")
	waitFor(t, "the repair under way", func() bool {
		for _, d := range e.m.Downloads() {
			if d.ID == q.ID && d.Status == model.DownloadRunning && d.BytesDone > 256<<10 {
				return true
			}
		}
		return false
	})
	if !bytes.Equal(e.file("loras/some.safetensors"), bad) {
		t.Fatal("the corrupt file was replaced before the new copy was complete")
	}
	if r := e.wait(q.ID); r.Status != model.DownloadCompleted {
		t.Fatalf("repair = %+v (error %+v)", r, r.Error)
	}
	if !bytes.Equal(e.file("loras/some.safetensors"), data) {
		t.Fatal("the repaired file is not the served one")
	}
	if p, _ := e.m.Preset("LORA"); p.Status != PresetInstalled || p.Files[0].Corrupt {
		t.Fatalf("preset after the repair: %+v", p)
	}
	if _, ok := ledger.corrupt["loras/some.safetensors"]; ok {
		t.Error("the ledger still holds the repaired file as corrupt")
	}
	// The overview heard the corrupt copy leave and the new one land.
	files.mu.Lock()
	added, removed := slices.Clone(files.added), slices.Clone(files.removed)
	files.mu.Unlock()
	if !slices.Contains(added, landedFile{"loras/some.safetensors", int64(len(data))}) || !slices.Equal(removed, []landedFile{{"loras/some.safetensors", int64(len(bad))}}) {
		t.Errorf("added %+v, removed %+v", added, removed)
	}
	if e.wait(e.verify("LORA").ID).Status != model.DownloadCompleted {
		t.Error("the repaired preset does not verify")
	}
}

// Files nobody states a SHA-256 for are reported, not failed: a preset file
// without sha256 from a host that is not HuggingFace, and a small
// HuggingFace file whose X-Linked-Etag is a git SHA-1.
func TestVerifyUnverifiable(t *testing.T) {
	small := []byte(`{"model_type":"tiny"}`)
	var heads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		heads.Add(1)
		if r.Method != http.MethodHead {
			t.Errorf("verify sent %s %s", r.Method, r.URL.Path)
		}
		// HuggingFace answers a file outside LFS itself, naming its git blob.
		w.Header().Set("X-Linked-Etag", `"`+strings.Repeat("3f", 20)+`"`)
		w.Header().Set("ETag", `"`+strings.Repeat("3f", 20)+`"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(small)))
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a host that is not HuggingFace was asked: %s %s", r.Method, r.URL.Path)
	}))
	defer other.Close()
	yml := `presets:
  MIXED:
    name: Mixed
    files:
    - path: configs/config.json
      url: ` + hfURL("config.json") + `
    - path: upscale_models/x4.pth
      url: ` + other.URL + `/x4.pth
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	e.put("configs/config.json", small)
	e.put("upscale_models/x4.pth", []byte("weights"))
	d := e.wait(e.verify("MIXED").ID)
	if d.Status != model.DownloadCompleted || !slices.Equal(d.Unverifiable, []string{"configs/config.json", "upscale_models/x4.pth"}) || d.FilesCompleted != 2 || d.BytesTotal != 0 {
		t.Fatalf("verify = %+v", d)
	}
	if heads.Load() != 1 {
		t.Errorf("HuggingFace was asked %d times, want once", heads.Load())
	}
	acts := e.rec.all()
	if last := acts[len(acts)-1]; last.Title != "Verified Mixed" || !strings.Contains(string(last.Details), `"unverifiable":["configs/config.json","upscale_models/x4.pth"]`) {
		t.Errorf("activity = %+v %s", last, last.Details)
	}
	if p, _ := e.m.Preset("MIXED"); p.Status != PresetInstalled {
		t.Errorf("preset = %+v", p)
	}
}

// HuggingFace states an LFS file's SHA-256 on its redirect to the CDN: the
// verify takes it from there, with the token, and never asks the CDN.
func TestVerifyAsksHuggingFaceNotTheCDN(t *testing.T) {
	data := randomBytes(1<<20, 23)
	f := newCDNFixture(t, data, 0)
	yml := onePreset("HF", "checkpoints/f.safetensors", hfURL("f.safetensors"), "")
	e := newEnv(t, f.hf.URL(), yml, envOpts{})
	e.put("checkpoints/f.safetensors", data)
	if d := e.wait(e.verify("HF").ID); d.Status != model.DownloadCompleted || d.BytesDone != int64(len(data)) || len(d.Unverifiable) != 0 {
		t.Fatalf("verify = %+v", d)
	}
	bad := bytes.Clone(data)
	bad[0] ^= 0x80
	e.put("checkpoints/f.safetensors", bad)
	if d := e.wait(e.verify("HF").ID); d.Status != model.DownloadFailed || d.Error.Code != model.CodeChecksum {
		t.Fatalf("verify of a flipped byte = %+v", d)
	}
	if n := len(f.cdn.requests()); n != 0 {
		t.Fatalf("the CDN was asked %d times", n)
	}
	reqs := f.hfRequests()
	if len(reqs) != 2 {
		t.Fatalf("HuggingFace was asked %d times, want 2 (a HEAD per verify)", len(reqs))
	}
	for _, r := range reqs {
		if r.method != http.MethodHead || r.auth != "Bearer hf_secret" {
			t.Errorf("HuggingFace got %s with Authorization %q", r.method, r.auth)
		}
	}
	e.noSecret(t, 0)
}

// A verify that HuggingFace refuses says why, as a download would.
func TestVerifyTokenRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "token", http.StatusUnauthorized)
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("GATED", "checkpoints/g.safetensors", hfURL("g.safetensors"), ""), envOpts{})
	e.put("checkpoints/g.safetensors", []byte("weights"))
	d := e.wait(e.verify("GATED").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeHFTokenRequired {
		t.Fatalf("verify = %+v (error %+v)", d, d.Error)
	}
	if p, _ := e.m.Preset("GATED"); p.Files[0].Corrupt || !p.Files[0].Installed {
		t.Errorf("a refused verify marked the file: %+v", p)
	}
}

// Cancel stops a verify within a second even in the middle of a large file,
// and nothing is deleted. While it runs, installing the preset is busy.
func TestCancelMidVerify(t *testing.T) {
	const size = 8 << 30
	yml := fmt.Sprintf("presets:\n  BIG:\n    name: Big\n    files:\n    - {path: big/huge.bin, url: http://127.0.0.1:1/huge.bin, size: %d, sha256: %s}\n", size, strings.Repeat("ab", 32))
	e := newEnv(t, "http://127.0.0.1:1", yml, envOpts{})
	huge := filepath.Join(e.models, "big/huge.bin")
	e.put("big/huge.bin", nil)
	if err := os.Truncate(huge, size); err != nil { // sparse: no disk space
		t.Fatal(err)
	}
	e.put("big/huge.bin.part", []byte("leftover"))
	q := e.verify("BIG")
	waitFor(t, "hashing under way", func() bool {
		for _, d := range e.m.Downloads() {
			if d.ID == q.ID && d.BytesDone > 0 {
				return true
			}
		}
		return false
	})
	if _, err := e.m.Install(context.Background(), "BIG"); model.ErrorCode(err) != model.CodeBusy {
		t.Errorf("install during a verify: %v, want busy", err)
	}
	if _, err := e.m.Verify(context.Background(), "BIG"); model.ErrorCode(err) != model.CodeAlreadyQueued {
		t.Errorf("a second verify: %v, want already_queued", err)
	}
	began := time.Now()
	d, err := e.m.Cancel(q.ID)
	took := time.Since(began)
	if err != nil || d.Status != model.DownloadCancelled || d.BytesDone >= size {
		t.Fatalf("cancel = %+v, %v", d, err)
	}
	if took > time.Second {
		t.Errorf("cancel took %v in the middle of the file, want under 1 s", took)
	}
	if st, err := os.Stat(huge); err != nil || st.Size() != size {
		t.Fatalf("the file after a cancelled verify: %v %v", st, err)
	}
	if !exists(huge + partSuffix) {
		t.Error("a cancelled verify removed a .part")
	}
	if p, _ := e.m.Preset("BIG"); p.Files[0].Corrupt {
		t.Error("a cancelled verify marked the file corrupt")
	}
	if got := e.titles(); got[len(got)-1] != "failed Cancelled verify of Big" {
		t.Errorf("activity = %q", got)
	}
}

// Retrying a verify verifies again; a verify cancelled while queued
// deletes nothing either.
func TestRetryAndQueuedCancelOfVerify(t *testing.T) {
	data := []byte("weights")
	yml := onePreset("A", "loras/a.bin", "http://127.0.0.1:1/a.bin", "")
	e := newEnv(t, "http://127.0.0.1:1", strings.Replace(yml, "size: 1MB", "sha256: "+sha(data), 1), envOpts{noRun: true})
	e.put("loras/a.bin", data)
	e.put("loras/a.bin.part", []byte("left"))
	q := e.verify("A")
	if d, err := e.m.Cancel(q.ID); err != nil || d.Status != model.DownloadCancelled {
		t.Fatalf("cancel queued = %+v, %v", d, err)
	}
	if !exists(filepath.Join(e.models, "loras/a.bin.part")) {
		t.Error("cancelling a queued verify removed a .part")
	}
	e.start()
	r, err := e.m.Retry(context.Background(), q.ID)
	if err != nil || r.Kind != model.KindVerify {
		t.Fatalf("retry = %+v, %v", r, err)
	}
	if d := e.wait(r.ID); d.Status != model.DownloadCompleted {
		t.Fatalf("retried verify = %+v", d)
	}
}
