package downloader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"dashboard/model"
)

// ---- fakes ----

type fakeHistory struct {
	mu   sync.Mutex
	next int64
	rows map[int64]model.DownloadRecord
}

func newFakeHistory() *fakeHistory { return &fakeHistory{rows: map[int64]model.DownloadRecord{}} }

func (h *fakeHistory) StartDownload(_ context.Context, presetID string, filesTotal int) (model.DownloadRecord, error) {
	return h.start(presetID, model.KindInstall, filesTotal), nil
}

func (h *fakeHistory) StartVerify(_ context.Context, presetID string, filesTotal int) (model.DownloadRecord, error) {
	return h.start(presetID, model.KindVerify, filesTotal), nil
}

func (h *fakeHistory) start(presetID string, kind model.DownloadKind, filesTotal int) model.DownloadRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.next++
	r := model.DownloadRecord{ID: h.next, PresetID: presetID, Kind: kind, Status: model.DownloadRunning, FilesTotal: filesTotal, StartedAt: time.Now().UTC()}
	h.rows[r.ID] = r
	return r
}

func (h *fakeHistory) FinishDownload(_ context.Context, id int64, end model.DownloadEnd) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.rows[id]
	if !ok {
		return model.Errorf(model.CodeNotFound, "There is no download %d.", id)
	}
	now := time.Now().UTC()
	// As the store keeps it: an interrupted download's message is the word.
	errMsg := ""
	if end.Error != nil {
		errMsg = end.Error.Message
		if end.Error.Code == model.CodeInterrupted {
			errMsg = string(model.CodeInterrupted)
		}
	}
	r.Status, r.ErrorMessage, r.Error, r.FilesCompleted, r.FilesTotal, r.CompletedAt = end.Status, errMsg, end.Error, end.FilesCompleted, end.FilesTotal, &now
	r.BytesDone, r.BytesTotal = end.BytesDone, end.BytesTotal
	h.rows[id] = r
	return nil
}

func (h *fakeHistory) GetDownload(_ context.Context, id int64) (model.DownloadRecord, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.rows[id]
	if !ok {
		return model.DownloadRecord{}, model.Errorf(model.CodeNotFound, "There is no download %d.", id)
	}
	return r, nil
}

func (h *fakeHistory) MarkInterrupted(context.Context) ([]model.DownloadRecord, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []model.DownloadRecord
	for id, r := range h.rows {
		if r.Status == model.DownloadRunning {
			now := time.Now().UTC()
			r.Status, r.ErrorMessage, r.CompletedAt = model.DownloadFailed, string(model.CodeInterrupted), &now
			h.rows[id] = r
			out = append(out, r)
		}
	}
	return out, nil
}

func (h *fakeHistory) row(id int64) model.DownloadRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rows[id]
}

type fakeRecorder struct {
	mu   sync.Mutex
	acts []model.Activity
}

// Insert refuses what the real activity log refuses.
func (r *fakeRecorder) Insert(_ context.Context, a model.Activity) (model.Activity, error) {
	if msg := a.Check(); msg != "" {
		return model.Activity{}, errors.New(msg)
	}
	if len(a.Details) > 0 && !json.Valid(a.Details) {
		return model.Activity{}, errors.New("details are not JSON")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	a.ID = int64(len(r.acts) + 1)
	r.acts = append(r.acts, a)
	return a, nil
}

func (r *fakeRecorder) all() []model.Activity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]model.Activity(nil), r.acts...)
}

type frame struct {
	at   time.Time
	typ  string
	d    Download       // a download frame's data
	a    model.Activity // an activity frame's data
	list PresetList     // a presets frame's data
}

type fakePublisher struct {
	mu     sync.Mutex
	frames []frame
	delay  time.Duration
}

func (p *fakePublisher) Publish(typ string, data any) {
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	f := frame{at: time.Now(), typ: typ}
	var ok bool
	switch typ {
	case model.FrameDownload:
		f.d, ok = data.(Download)
	case model.FrameActivity:
		f.a, ok = data.(model.Activity)
	case model.FramePresets:
		f.list, ok = data.(PresetList)
	}
	if !ok {
		panic(fmt.Sprintf("unexpected frame %s %T", typ, data))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frames = append(p.frames, f)
}

// of returns the download frames of download id.
func (p *fakePublisher) of(id int64) []frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []frame
	for _, f := range p.frames {
		if f.typ == model.FrameDownload && f.d.ID == id {
			out = append(out, f)
		}
	}
	return out
}

// all returns every frame published so far.
func (p *fakePublisher) all() []frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]frame(nil), p.frames...)
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ---- the HuggingFace stand-in ----

type seenReq struct {
	Method, Path, Auth, Range, IfRange string
}

// recorder wraps a handler and remembers every request.
type recorder struct {
	mu   sync.Mutex
	reqs []seenReq
}

func (rc *recorder) wrap(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, seenReq{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Range"), r.Header.Get("If-Range")})
		rc.mu.Unlock()
		h(w, r)
	})
}

func (rc *recorder) all() []seenReq {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]seenReq(nil), rc.reqs...)
}

func (rc *recorder) gets(path string) []seenReq {
	var out []seenReq
	for _, r := range rc.all() {
		if r.Method == http.MethodGet && r.Path == path {
			out = append(out, r)
		}
	}
	return out
}

func randomBytes(n int, seed uint64) []byte {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// slowReader hands out its bytes a piece at a time, optionally failing
// after a number of bytes (a cut connection).
type slowReader struct {
	*bytes.Reader
	piece     int
	delay     time.Duration
	failAfter int64 // -1: never
	read      int64
	ctx       context.Context
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.failAfter >= 0 && s.read >= s.failAfter {
		return 0, errors.New("cut")
	}
	if len(p) > s.piece {
		p = p[:s.piece]
	}
	if s.failAfter >= 0 && int64(len(p)) > s.failAfter-s.read {
		p = p[:s.failAfter-s.read]
	}
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-s.ctx.Done():
			return 0, s.ctx.Err()
		}
	}
	n, err := s.Reader.Read(p)
	s.read += int64(n)
	return n, err
}

type serveOpts struct {
	piece     int           // bytes per read; 0 → all at once
	delay     time.Duration // between pieces
	failAfter int64         // cut the body after this many bytes of it; 0 → never
	noETag    bool
	etag      string // overrides the sha256 ETag
}

// serve answers like HuggingFace's resolve endpoint: the sha256 as
// X-Linked-Etag and ETag, Range and If-Range support (via ServeContent).
func serve(w http.ResponseWriter, r *http.Request, data []byte, o serveOpts) {
	if !o.noETag {
		tag := o.etag
		if tag == "" {
			tag = sha(data)
		}
		w.Header().Set("ETag", `"`+tag+`"`)
		w.Header().Set("X-Linked-Etag", `"`+tag+`"`)
	}
	fail := int64(-1)
	if o.failAfter > 0 {
		fail = o.failAfter
	}
	piece := o.piece
	if piece == 0 {
		piece = len(data) + 1
	}
	http.ServeContent(w, r, "", time.Time{}, &slowReader{Reader: bytes.NewReader(data), piece: piece, delay: o.delay, failAfter: fail, ctx: r.Context()})
}

// ---- the test environment ----

type env struct {
	t       *testing.T
	dir     string
	models  string
	presets string
	hist    *fakeHistory
	rec     *fakeRecorder
	pub     *fakePublisher
	logs    *syncBuffer
	m       *Manager
	stop    context.CancelFunc
	stopped chan struct{}
}

type envOpts struct {
	cfg   func(*Config)
	hist  *fakeHistory
	dir   string
	noRun bool
}

func newEnv(t *testing.T, endpoint string, presetsYAML string, o envOpts) *env {
	t.Helper()
	e := &env{t: t, dir: o.dir, hist: o.hist, rec: &fakeRecorder{}, pub: &fakePublisher{}, logs: &syncBuffer{}}
	if e.dir == "" {
		e.dir = t.TempDir()
	}
	if e.hist == nil {
		e.hist = newFakeHistory()
	}
	e.models = filepath.Join(e.dir, "models")
	e.presets = filepath.Join(e.dir, "config", "presets.yaml")
	if presetsYAML != "" {
		if err := os.MkdirAll(filepath.Dir(e.presets), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.presets, []byte(presetsYAML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{
		PresetsFile:  e.presets,
		ModelsDir:    e.models,
		HFEndpoint:   endpoint,
		Token:        func(context.Context) string { return "hf_secret" },
		History:      e.hist,
		Recorder:     e.rec,
		Publisher:    e.pub,
		Logger:       slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		PollInterval: 20 * time.Millisecond,
		StallTimeout: 2 * time.Second,
		RetryBase:    time.Millisecond,
		MaxRetries:   3,
		FreeSpace:    func(string) (uint64, error) { return 1 << 40, nil },
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	if !o.noRun {
		e.start()
	}
	t.Cleanup(func() {
		e.shutdown()
		if t.Failed() {
			t.Logf("log:\n%s", e.logs.String())
		}
	})
	return e
}

func (e *env) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	e.stopped = make(chan struct{})
	go func() {
		defer close(e.stopped)
		if err := e.m.Run(ctx); err != nil {
			e.t.Errorf("run: %v", err)
		}
	}()
}

func (e *env) shutdown() {
	if e.stop == nil {
		return
	}
	e.stop()
	select {
	case <-e.stopped:
	case <-time.After(10 * time.Second):
		e.t.Error("Run did not return after shutdown")
	}
	e.stop = nil
}

// wait polls until download id reaches one of the final statuses, then
// until its worker is done with it (history row, frames and activity
// written).
func (e *env) wait(id int64) Download {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, d := range e.m.Downloads() {
			if d.ID == id && (d.Status == model.DownloadCompleted || d.Status == model.DownloadFailed || d.Status == model.DownloadCancelled) {
				e.m.mu.Lock()
				live := e.m.findLocked(id)
				e.m.mu.Unlock()
				if live == nil {
					return d // already dropped from the live list: long done
				}
				select {
				case <-live.done:
				case <-time.After(time.Until(deadline)):
					e.t.Fatalf("download %d ended but its worker did not finish", id)
				}
				return d
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("download %d did not finish; downloads: %+v", id, e.m.Downloads())
	return Download{}
}

// waitFor polls cond until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func (e *env) install(id string) Download {
	e.t.Helper()
	d, err := e.m.Install(context.Background(), id)
	if err != nil {
		e.t.Fatalf("install %s: %v", id, err)
	}
	return d
}

func (e *env) file(rel string) []byte {
	b, err := os.ReadFile(filepath.Join(e.models, rel))
	if err != nil {
		e.t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func onePreset(id, path, url, extra string) string {
	return fmt.Sprintf(`presets:
  %s:
    name: Preset %s
    category: Image Generation
    type: image
%s    files:
    - path: %s
      url: %s
      size: 1MB
`, id, id, extra, path, url)
}

func hfURL(file string) string { return "https://huggingface.co/org/repo/resolve/main/" + file }

// ---- tests ----

func TestInstallCompletes(t *testing.T) {
	data := randomBytes(3<<20+123, 1)
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/org/repo/resolve/main/model.safetensors" {
			http.NotFound(w, r)
			return
		}
		serve(w, r, data, serveOpts{})
	}))
	defer srv.Close()
	yml := `presets:
  TWO:
    name: Two files
    category: B
    files:
    - path: checkpoints/model.safetensors
      url: ` + hfURL("model.safetensors") + `
      size: 3MB
    - path: vae/present.bin
      url: ` + hfURL("present.bin") + `
      size: 5
  ONE:
    name: Another
    category: A
    files:
    - path: vae/present.bin
      url: ` + hfURL("present.bin") + `
      size: 5
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	if err := os.MkdirAll(filepath.Join(e.models, "vae"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.models, "vae/present.bin"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	ps, loadErr := e.m.Presets()
	if loadErr != "" || len(ps) != 2 || ps[0].ID != "ONE" || ps[0].Status != PresetInstalled || ps[1].Status != PresetPartial {
		t.Fatalf("presets before = %+v, %q", ps, loadErr)
	}

	q := e.install("TWO")
	if q.Status != model.DownloadQueued || q.ID == 0 || q.FilesTotal != 2 || q.FilesCompleted != 1 || q.BytesTotal != 3e6 || q.PresetName != "Two files" {
		t.Errorf("queued download = %+v", q)
	}
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || d.Error != nil || d.FilesCompleted != 2 || d.BytesDone != int64(len(data)) || d.BytesTotal != int64(len(data)) || d.CompletedAt == nil {
		t.Errorf("finished download = %+v", d)
	}
	if got := e.file("checkpoints/model.safetensors"); !bytes.Equal(got, data) {
		t.Error("file content differs")
	}
	st, _ := os.Stat(filepath.Join(e.models, "checkpoints/model.safetensors"))
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	if exists(filepath.Join(e.models, "checkpoints/model.safetensors.part")) {
		t.Error(".part left behind")
	}
	if gets := rc.gets("/org/repo/resolve/main/present.bin"); len(gets) != 0 {
		t.Error("a file already in place was fetched again")
	}
	if gets := rc.gets("/org/repo/resolve/main/model.safetensors"); len(gets) != 1 || gets[0].Auth != "Bearer hf_secret" {
		t.Errorf("requests = %+v", gets)
	}
	p, ok := e.m.Preset("TWO")
	if !ok || p.Status != PresetInstalled || !p.Files[0].Installed {
		t.Errorf("preset after = %+v", p)
	}

	row := e.hist.row(q.ID)
	if row.Status != model.DownloadCompleted || row.FilesCompleted != 2 || row.FilesTotal != 2 || row.ErrorMessage != "" {
		t.Errorf("history row = %+v", row)
	}
	acts := e.rec.all()
	if len(acts) != 2 || acts[0].Status != model.ActivityStarted || acts[0].Title != "Downloading Two files" || acts[0].Subtitle != "TWO" ||
		acts[1].Status != model.ActivityCompleted || acts[1].Type != model.ActivityDownload {
		t.Fatalf("activity = %+v", acts)
	}
	var details map[string]any
	if err := json.Unmarshal(acts[1].Details, &details); err != nil {
		t.Fatal(err)
	}
	if details["preset_id"] != "TWO" || details["download_id"] != float64(q.ID) || details["bytes"] != float64(len(data)) || details["duration_seconds"] == nil {
		t.Errorf("details = %v", details)
	}
	waitFor(t, "the completed frame", func() bool {
		fs := e.pub.of(q.ID)
		return len(fs) > 0 && fs[len(fs)-1].d.Status == model.DownloadCompleted
	})
	fs := e.pub.of(q.ID)
	if fs[0].d.Status != model.DownloadQueued || fs[1].d.Status != model.DownloadRunning {
		t.Errorf("first frames = %+v", fs[:2])
	}

	// Installing it again is refused: nothing to fetch, nothing recorded.
	nActs := len(e.rec.all())
	if _, err := e.m.Install(context.Background(), "TWO"); model.ErrorCode(err) != model.CodeAlreadyInstalled {
		t.Errorf("second install: %v, want ErrAlreadyInstalled", err)
	}
	if len(rc.gets("/org/repo/resolve/main/model.safetensors")) != 1 || len(e.rec.all()) != nActs {
		t.Error("a second install fetched or recorded something")
	}
	e.hist.mu.Lock()
	rows := len(e.hist.rows)
	e.hist.mu.Unlock()
	if got := e.m.Downloads(); len(got) != 1 || got[0].ID != q.ID || rows != 1 {
		t.Errorf("downloads = %+v, history rows %d", got, rows)
	}
}

func TestDownloadJSONShape(t *testing.T) {
	eta := int64(7)
	b, err := json.Marshal(Download{ID: 3, PresetID: "X", Status: model.DownloadQueued, EtaSeconds: &eta})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"id", "preset_id", "preset_name", "kind", "status", "files_total", "files_completed", "bytes_total", "bytes_done", "speed_bps", "eta_seconds", "current_file", "error", "started_at", "completed_at", "unverifiable", "corrupt"} {
		if _, ok := m[k]; !ok {
			t.Errorf("Download JSON lacks %q: %s", k, b)
		}
	}
	if m["error"] != nil || m["completed_at"] != nil {
		t.Errorf("nulls expected: %s", b)
	}
	// What the API sends of an install: empty lists, never null.
	b, _ = json.Marshal((&download{id: 4, kind: model.KindInstall, preset: Preset{ID: "X"}, status: model.DownloadQueued}).snapshotLocked())
	if !strings.Contains(string(b), `"unverifiable":[]`) || !strings.Contains(string(b), `"corrupt":[]`) || !strings.Contains(string(b), `"kind":"install"`) {
		t.Errorf("an install's snapshot: %s", b)
	}
	b, _ = json.Marshal(Preset{Files: []PresetFile{{Path: "a", sha256: "x"}}})
	if strings.Contains(string(b), "sha256") || !strings.Contains(string(b), `"size_bytes"`) || !strings.Contains(string(b), `"installed"`) {
		t.Errorf("Preset JSON = %s", b)
	}
}

func TestGatedNeedsToken(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "locked") && r.Header.Get("Authorization") == "" {
			w.Header().Set("X-Error-Code", "GatedRepo")
			http.Error(w, "gated", http.StatusUnauthorized)
			return
		}
		serve(w, r, []byte("open"), serveOpts{})
	}))
	defer srv.Close()
	yml := `presets:
  FLAGGED:
    name: Flagged
    gated: true
    files:
    - {path: a/flagged.bin, url: "` + hfURL("flagged.bin") + `"}
  LOCKED:
    name: Locked
    files:
    - {path: a/locked.bin, url: "` + hfURL("locked.bin") + `"}
  OPEN:
    name: Open
    files:
    - {path: a/open.bin, url: "` + hfURL("open.bin") + `"}
`
	token := ""
	var mu sync.Mutex
	e := newEnv(t, srv.URL, yml, envOpts{cfg: func(c *Config) {
		c.Token = func(context.Context) string { mu.Lock(); defer mu.Unlock(); return token }
	}})
	for _, id := range []string{"FLAGGED", "LOCKED"} {
		if _, err := e.m.Install(context.Background(), id); model.ErrorCode(err) != model.CodeHFTokenRequired {
			t.Errorf("install %s without token: %v, want ErrTokenRequired", id, err)
		}
	}
	if heads := rc.all(); len(heads) != 1 || heads[0].Method != http.MethodHead || heads[0].Path != "/org/repo/resolve/main/locked.bin" {
		t.Errorf("requests = %+v, want one HEAD probe for LOCKED", heads)
	}
	if len(e.m.Downloads()) != 0 || e.hist.row(1).ID != 0 {
		t.Error("something was queued without a token")
	}
	// A public file needs no token.
	if d := e.wait(e.install("OPEN").ID); d.Status != model.DownloadCompleted {
		t.Errorf("open = %+v", d)
	}
	mu.Lock()
	token = "hf_x"
	mu.Unlock()
	if d := e.wait(e.install("LOCKED").ID); d.Status != model.DownloadCompleted {
		t.Errorf("locked with token = %+v", d)
	}
}

func TestHTTPErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		code    model.Code
		msg     string
	}{
		{"401", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Error-Code", "GatedRepo")
			http.Error(w, "Access to model org/repo is restricted", http.StatusUnauthorized)
		}, model.CodeHFTokenRequired, "token"},
		{"403", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Error-Code", "GatedRepo")
			http.Error(w, "Access to model org/repo is restricted and you are not in the authorized list", http.StatusForbidden)
		}, model.CodeHFAccessDenied, "https://huggingface.co/org/repo "},
		{"404", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Error-Code", "EntryNotFound")
			http.NotFound(w, r)
		}, model.CodeNotFound, "not found"},
		{"400", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", http.StatusBadRequest)
		}, model.CodeHTTP, "400"},
		{"500 forever", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "down", http.StatusBadGateway)
		}, model.CodeNetwork, "gave up after 4 attempts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recorder{}
			srv := httptest.NewServer(rc.wrap(tt.handler))
			defer srv.Close()
			e := newEnv(t, srv.URL, onePreset("P", "x/f.bin", hfURL("f.bin"), ""), envOpts{})
			d := e.wait(e.install("P").ID)
			if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != tt.code || !strings.Contains(d.Error.Message, tt.msg) {
				t.Fatalf("download = %+v err=%+v", d, d.Error)
			}
			if strings.Contains(d.Error.Message, "hf_secret") || strings.Contains(e.logs.String(), "hf_secret") {
				t.Error("the token leaked into a message or the log")
			}
			wantGets := 1
			if tt.code == model.CodeNetwork {
				wantGets = 4 // MaxRetries 3 after the first
			}
			if n := len(rc.gets("/org/repo/resolve/main/f.bin")); n != wantGets {
				t.Errorf("%d GETs, want %d", n, wantGets)
			}
			row := e.hist.row(d.ID)
			if row.Status != model.DownloadFailed || row.ErrorMessage != d.Error.Message {
				t.Errorf("history = %+v", row)
			}
			acts := e.rec.all()
			last := acts[len(acts)-1]
			if last.Status != model.ActivityFailed || !strings.Contains(string(last.Details), string(tt.code)) {
				t.Errorf("activity = %+v %s", last, last.Details)
			}
			if exists(filepath.Join(e.models, "x/f.bin")) {
				t.Error("a final file appeared")
			}
			// No bytes came, so no empty .part may make the preset look partly installed.
			if exists(filepath.Join(e.models, "x/f.bin.part")) {
				t.Error("an empty .part was left behind")
			}
			if p, _ := e.m.Preset("P"); p.Status != PresetMissing {
				t.Errorf("preset status %q after a failed first attempt, want missing", p.Status)
			}
		})
	}
}

func TestTokenStaysOnHFHost(t *testing.T) {
	data := randomBytes(100_000, 2)
	cdnRC := &recorder{}
	cdn := httptest.NewServer(cdnRC.wrap(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, data, serveOpts{noETag: true})
	}))
	defer cdn.Close()
	hfRC := &recorder{}
	hf := httptest.NewServer(hfRC.wrap(func(w http.ResponseWriter, r *http.Request) {
		// Like HuggingFace for LFS files: the checksum on the redirect,
		// the bytes on another host.
		w.Header().Set("X-Linked-Etag", `"`+sha(data)+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		http.Redirect(w, r, cdn.URL+"/blobs/"+filepath.Base(r.URL.Path), http.StatusFound)
	}))
	defer hf.Close()
	yml := `presets:
  VIA_CDN:
    files:
    - {path: a/lfs.bin, url: "` + hfURL("lfs.bin") + `"}
  ELSEWHERE:
    files:
    - {path: a/direct.bin, url: "` + cdn.URL + `/direct.bin"}
`
	e := newEnv(t, hf.URL, yml, envOpts{})
	if d := e.wait(e.install("VIA_CDN").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("via cdn = %+v %+v", d, d.Error)
	}
	if d := e.wait(e.install("ELSEWHERE").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("elsewhere = %+v %+v", d, d.Error)
	}
	if reqs := hfRC.all(); len(reqs) != 1 || reqs[0].Auth != "Bearer hf_secret" {
		t.Errorf("hf saw %+v", reqs)
	}
	cdnReqs := cdnRC.all()
	if len(cdnReqs) != 2 {
		t.Errorf("cdn saw %+v", cdnReqs)
	}
	for _, r := range cdnReqs {
		if r.Auth != "" {
			t.Errorf("the token reached another host: %+v", r)
		}
	}
	if !bytes.Equal(e.file("a/lfs.bin"), data) || !bytes.Equal(e.file("a/direct.bin"), data) {
		t.Error("content differs")
	}
	if !strings.Contains(e.logs.String(), "download unverified") {
		t.Error("the file without any checksum was not logged as unverified")
	}
}

// The checksum on the redirect is the one that counts: a CDN answer with a
// wrong body must fail.
func TestRedirectChecksumEnforced(t *testing.T) {
	data := randomBytes(50_000, 3)
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, data, serveOpts{noETag: true})
	}))
	defer cdn.Close()
	hf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Linked-Etag", `"`+strings.Repeat("0", 64)+`"`)
		http.Redirect(w, r, cdn.URL+"/x", http.StatusFound)
	}))
	defer hf.Close()
	e := newEnv(t, hf.URL, onePreset("P", "a/x.bin", hfURL("x.bin"), ""), envOpts{})
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeChecksum {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
}

func TestResumeAfterCutConnection(t *testing.T) {
	data := randomBytes(2<<20+77, 4)
	rc := &recorder{}
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		o := serveOpts{piece: 64 << 10}
		if first {
			o.failAfter = 1<<20 + 5 // the connection drops mid-body
		}
		serve(w, r, data, o)
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/big.bin", hfURL("big.bin"), ""), envOpts{})
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadCompleted {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if !bytes.Equal(e.file("a/big.bin"), data) {
		t.Fatal("content differs after resume")
	}
	gets := rc.gets("/org/repo/resolve/main/big.bin")
	if len(gets) != 2 || !strings.HasPrefix(gets[0].Range, "bytes=0-") || !strings.HasPrefix(gets[1].Range, "bytes=") || strings.HasPrefix(gets[1].Range, "bytes=0-") {
		t.Fatalf("requests = %+v", gets)
	}
	if gets[1].IfRange != `"`+sha(data)+`"` {
		t.Errorf("If-Range = %q", gets[1].IfRange)
	}
	if d.BytesDone != int64(len(data)) {
		t.Errorf("bytes done %d", d.BytesDone)
	}
}

// A server that ignores the Range (or whose file changed) answers 200:
// the .part starts over.
func TestResumeAnsweredWith200RestartsFromZero(t *testing.T) {
	data := randomBytes(1<<20, 5)
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Linked-Etag", `"`+sha(data)+`"`)
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data) // never a 206
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	os.MkdirAll(filepath.Join(e.models, "a"), 0o755)
	// A stale .part with wrong bytes, longer than half the file.
	os.WriteFile(filepath.Join(e.models, "a/f.bin.part"), bytes.Repeat([]byte{'x'}, 700_000), 0o644)
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("a/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if gets := rc.gets("/org/repo/resolve/main/f.bin"); len(gets) != 1 || !strings.HasPrefix(gets[0].Range, "bytes=700000-") {
		t.Errorf("requests = %+v", gets)
	}
}

func TestRetryAfter500And429(t *testing.T) {
	data := randomBytes(10_000, 6)
	rc := &recorder{}
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		c := calls[r.URL.Path]
		mu.Unlock()
		switch {
		case strings.HasSuffix(r.URL.Path, "five.bin") && c == 1:
			http.Error(w, "oops", http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, "slow.bin") && c == 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			serve(w, r, data, serveOpts{})
		}
	}))
	defer srv.Close()
	yml := `presets:
  FIVE:
    files: [{path: a/five.bin, url: "` + hfURL("five.bin") + `"}]
  SLOW:
    files: [{path: a/slow.bin, url: "` + hfURL("slow.bin") + `"}]
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	if d := e.wait(e.install("FIVE").ID); d.Status != model.DownloadCompleted || len(rc.gets("/org/repo/resolve/main/five.bin")) != 2 {
		t.Errorf("after a 500: %+v", d)
	}
	began := time.Now()
	d := e.wait(e.install("SLOW").ID)
	if d.Status != model.DownloadCompleted || len(rc.gets("/org/repo/resolve/main/slow.bin")) != 2 {
		t.Errorf("after a 429: %+v", d)
	}
	// RetryBase is 1ms: only Retry-After explains a wait of a second.
	if el := time.Since(began); el < 900*time.Millisecond {
		t.Errorf("retried after %v, Retry-After said 1s", el)
	}
}

func TestChecksumMismatch(t *testing.T) {
	data := randomBytes(300_000, 7)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "etag.bin") {
			serve(w, r, data, serveOpts{etag: sha([]byte("something else"))})
			return
		}
		serve(w, r, data, serveOpts{noETag: true})
	}))
	defer srv.Close()
	yml := `presets:
  BY_ETAG:
    files: [{path: a/etag.bin, url: "` + hfURL("etag.bin") + `"}]
  BY_PRESET:
    files: [{path: a/preset.bin, url: "` + hfURL("preset.bin") + `", sha256: "` + strings.Repeat("ab", 32) + `"}]
  RIGHT:
    files: [{path: a/right.bin, url: "` + hfURL("right.bin") + `", sha256: "` + strings.ToUpper(sha(data)) + `"}]
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	for _, id := range []string{"BY_ETAG", "BY_PRESET"} {
		d := e.wait(e.install(id).ID)
		if d.Status != model.DownloadFailed || d.Error.Code != model.CodeChecksum {
			t.Errorf("%s = %+v %+v", id, d, d.Error)
		}
	}
	for _, f := range []string{"a/etag.bin", "a/etag.bin.part", "a/preset.bin", "a/preset.bin.part"} {
		if exists(filepath.Join(e.models, f)) {
			t.Errorf("%s exists after a checksum mismatch", f)
		}
	}
	if d := e.wait(e.install("RIGHT").ID); d.Status != model.DownloadCompleted {
		t.Errorf("RIGHT = %+v %+v", d, d.Error)
	}
}

func TestStalledBodyIsRetried(t *testing.T) {
	data := randomBytes(1<<20, 8)
	rc := &recorder{}
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		if first {
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			w.Header().Set("ETag", `"`+sha(data)+`"`)
			w.Write(data[:100_000])
			w.(http.Flusher).Flush()
			<-r.Context().Done() // then nothing, until the client gives up
			return
		}
		serve(w, r, data, serveOpts{})
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{cfg: func(c *Config) {
		c.StallTimeout = 300 * time.Millisecond
	}})
	began := time.Now()
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("a/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if gets := rc.gets("/org/repo/resolve/main/f.bin"); len(gets) != 2 || !strings.HasPrefix(gets[1].Range, "bytes=100000-") {
		t.Errorf("requests = %+v", gets)
	}
	if el := time.Since(began); el < 300*time.Millisecond {
		t.Errorf("finished in %v, before the stall timeout", el)
	}
	if !strings.Contains(e.logs.String(), "no data arrived") {
		t.Error("the stall was not logged")
	}
}

func TestStalledForeverFailsNetwork(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{cfg: func(c *Config) {
		c.StallTimeout = 100 * time.Millisecond
		c.MaxRetries = 1
	}})
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeNetwork || !strings.Contains(d.Error.Message, "no data arrived") {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
}

// slowServer streams data in pieces so a test can act mid-file.
func slowServer(data []byte, rc *recorder) *httptest.Server {
	return httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, data, serveOpts{piece: 32 << 10, delay: 10 * time.Millisecond})
	}))
}

func TestCancelMidFile(t *testing.T) {
	data := randomBytes(2<<20, 9)
	rc := &recorder{}
	srv := slowServer(data, rc)
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	part := filepath.Join(e.models, "a/f.bin.part")
	q := e.install("P")
	// Bytes written, not the .part's size: it is preallocated to the
	// whole file at once, and a cancel before any byte keeps nothing.
	waitFor(t, "bytes on disk", func() bool {
		for _, d := range e.m.Downloads() {
			if d.ID == q.ID && d.BytesDone > 100_000 {
				return true
			}
		}
		return false
	})
	d, err := e.m.Cancel(q.ID)
	if err != nil || d.Status != model.DownloadCancelled || d.CompletedAt == nil {
		t.Fatalf("cancel = %+v, %v", d, err)
	}
	if !exists(part) || exists(filepath.Join(e.models, "a/f.bin")) {
		t.Error("after a cancel the .part must stay, for a retry to resume, and nothing be at the final path")
	}
	if row := e.hist.row(q.ID); row.Status != model.DownloadCancelled {
		t.Errorf("history = %+v", row)
	}
	if p, _ := e.m.Preset("P"); p.Status != PresetPartial {
		t.Errorf("preset status %s, want partial: its .part is kept", p.Status)
	}
	if _, err := e.m.Cancel(q.ID); model.ErrorCode(err) != model.CodeAlreadyFinished {
		t.Errorf("second cancel: %v", err)
	}
	if _, err := e.m.Cancel(999); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("cancel unknown: %v", err)
	}
	// Retry of a cancelled download is a new download that completes.
	r, err := e.m.Retry(context.Background(), q.ID)
	if err != nil || r.ID == q.ID {
		t.Fatalf("retry = %+v, %v", r, err)
	}
	if d := e.wait(r.ID); d.Status != model.DownloadCompleted || !bytes.Equal(e.file("a/f.bin"), data) {
		t.Errorf("retry = %+v", d)
	}
	if _, err := e.m.Retry(context.Background(), r.ID); model.ErrorCode(err) != model.CodeNotRetryable {
		t.Errorf("retry of a completed download: %v", err)
	}
	if _, err := e.m.Retry(context.Background(), 12345); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("retry of an unknown download: %v", err)
	}
}

func TestQueueOrderAlreadyQueuedAndCancelQueued(t *testing.T) {
	data := randomBytes(600_000, 10)
	rc := &recorder{}
	srv := slowServer(data, rc)
	defer srv.Close()
	yml := `presets:
  A:
    files: [{path: a/a.bin, url: "` + hfURL("a.bin") + `"}]
  B:
    files: [{path: a/b.bin, url: "` + hfURL("b.bin") + `"}]
  C:
    files: [{path: a/c.bin, url: "` + hfURL("c.bin") + `"}]
`
	e := newEnv(t, srv.URL, yml, envOpts{})
	os.MkdirAll(filepath.Join(e.models, "a"), 0o755)
	os.WriteFile(filepath.Join(e.models, "a/b.bin.part"), data[:1000], 0o644) // from an earlier run
	a, b, c := e.install("A"), e.install("B"), e.install("C")
	if _, err := e.m.Install(context.Background(), "C"); model.ErrorCode(err) != model.CodeAlreadyQueued {
		t.Errorf("second install of C: %v", err)
	}
	if _, err := e.m.Install(context.Background(), "NOPE"); model.ErrorCode(err) != model.CodeNotFound {
		t.Errorf("install of unknown preset: %v", err)
	}
	waitFor(t, "A running", func() bool { p, _ := e.m.Preset("A"); return p.Status == PresetDownloading })
	if p, _ := e.m.Preset("B"); p.Status != PresetQueued {
		t.Errorf("B is %s while A runs (Concurrency 1)", p.Status)
	}
	if _, err := e.m.Install(context.Background(), "A"); model.ErrorCode(err) != model.CodeAlreadyQueued {
		t.Errorf("install of running A: %v", err)
	}
	cb, err := e.m.Cancel(b.ID)
	if err != nil || cb.Status != model.DownloadCancelled {
		t.Fatalf("cancel queued B = %+v, %v", cb, err)
	}
	if !exists(filepath.Join(e.models, "a/b.bin.part")) {
		t.Error("cancelling a queued download removed the .part an earlier run left")
	}
	if _, err := e.m.Retry(context.Background(), c.ID); model.ErrorCode(err) != model.CodeNotRetryable {
		t.Errorf("retry of a queued download: %v", err)
	}
	e.wait(c.ID)
	e.wait(a.ID)
	var order []string
	for _, r := range rc.all() {
		order = append(order, filepath.Base(r.Path))
	}
	if strings.Join(order, ",") != "a.bin,c.bin" {
		t.Errorf("fetch order %v", order)
	}
	if row := e.hist.row(b.ID); row.Status != model.DownloadCancelled {
		t.Errorf("B history %+v", row)
	}
	for _, act := range e.rec.all() {
		if act.Subtitle == "B" {
			t.Errorf("a download that never started has activity: %+v", act)
		}
	}
}

// A dashboard restart mid-file keeps the .part; the next dashboard's Retry
// of the old history id resumes it with a Range request.
func TestRestartThenRetryResumes(t *testing.T) {
	data := randomBytes(6<<20, 11) // about 2 s: the state file is saved every second
	rc := &recorder{}
	srv := slowServer(data, rc)
	defer srv.Close()
	dir := t.TempDir()
	hist := newFakeHistory()
	yml := onePreset("P", "a/f.bin", hfURL("f.bin"), "")
	e1 := newEnv(t, srv.URL, yml, envOpts{dir: dir, hist: hist})
	part := filepath.Join(e1.models, "a/f.bin.part")
	q := e1.install("P")
	waitFor(t, "bytes on disk", func() bool { return stateDone(t, e1.models, "a/f.bin") > 200_000 })
	e1.shutdown()
	if _, err := os.Stat(part); err != nil {
		t.Fatalf(".part gone after shutdown: %v", err)
	}
	had := stateDone(t, e1.models, "a/f.bin")
	row := hist.row(q.ID)
	if row.Status != model.DownloadFailed || row.ErrorMessage != "interrupted" {
		t.Errorf("history after shutdown = %+v", row)
	}
	if fs := e1.pub.of(q.ID); fs[len(fs)-1].d.Status != model.DownloadFailed || fs[len(fs)-1].d.Error.Code != model.CodeInterrupted {
		t.Errorf("last frame = %+v", fs[len(fs)-1].d)
	}

	e2 := newEnv(t, srv.URL, "", envOpts{dir: dir, hist: hist})
	if p, _ := e2.m.Preset("P"); p.Status != PresetPartial {
		t.Errorf("preset after restart = %s", p.Status)
	}
	if len(e2.m.Downloads()) != 0 {
		t.Error("a download resumed on its own")
	}
	r, err := e2.m.Retry(context.Background(), q.ID)
	if err != nil {
		t.Fatalf("retry old id: %v", err)
	}
	d := e2.wait(r.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e2.file("a/f.bin"), data) {
		t.Fatalf("resumed = %+v %+v", d, d.Error)
	}
	gets := rc.gets("/org/repo/resolve/main/f.bin")
	last := gets[len(gets)-1]
	if last.Range == "" || last.Range == "bytes=0-" {
		t.Errorf("the retry did not resume: %+v", last)
	}
	var from int64
	fmt.Sscanf(last.Range, "bytes=%d-", &from)
	if from < had {
		t.Errorf("resumed from %d, the .part had %d", from, had)
	}
}

func TestInsufficientDiskSpace(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, []byte("x"), serveOpts{})
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{cfg: func(c *Config) {
		c.FreeSpace = func(dir string) (uint64, error) {
			if !strings.HasSuffix(dir, "models") {
				t.Errorf("free space asked for %s", dir)
			}
			return 500_000, nil // the preset says 1MB
		}
	}})
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeDiskSpace || !strings.Contains(d.Error.Message, "1.0 MB") {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if len(rc.all()) != 0 {
		t.Errorf("bytes were fetched: %+v", rc.all())
	}
}

func TestSharedPathInstalledOnce(t *testing.T) {
	data := randomBytes(1<<20, 12)
	rc := &recorder{}
	srv := slowServer(data, rc)
	defer srv.Close()
	yml := `presets:
  FIRST:
    files:
    - {path: shared/clip.bin, url: "` + hfURL("clip.bin") + `"}
  SECOND:
    files:
    - {path: shared/clip.bin, url: "` + hfURL("clip.bin") + `"}
    - {path: own/second.bin, url: "` + hfURL("second.bin") + `"}
`
	e := newEnv(t, srv.URL, yml, envOpts{cfg: func(c *Config) { c.Concurrency = 2 }})
	a, b := e.install("FIRST"), e.install("SECOND")
	da, db2 := e.wait(a.ID), e.wait(b.ID)
	if da.Status != model.DownloadCompleted || db2.Status != model.DownloadCompleted {
		t.Fatalf("downloads %+v %+v", da, db2)
	}
	if n := len(rc.gets("/org/repo/resolve/main/clip.bin")); n != 1 {
		t.Errorf("shared file fetched %d times", n)
	}
	if !bytes.Equal(e.file("shared/clip.bin"), data) || db2.FilesCompleted != 2 {
		t.Errorf("second = %+v", db2)
	}
}

func TestBlobURLRewritten(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, []byte("weights"), serveOpts{})
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", "https://huggingface.co/org/repo/blob/main/f.bin", ""), envOpts{})
	p, _ := e.m.Preset("P")
	if p.Files[0].URL != "https://huggingface.co/org/repo/resolve/main/f.bin" {
		t.Errorf("url = %s", p.Files[0].URL)
	}
	if !strings.Contains(e.logs.String(), "blob/main/f.bin") {
		t.Error("no warning about the /blob/ url")
	}
	e.wait(e.install("P").ID)
	if reqs := rc.all(); len(reqs) != 1 || reqs[0].Path != "/org/repo/resolve/main/f.bin" {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestEndpointWithPathPrefix(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, []byte("weights"), serveOpts{})
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL+"/mirror/", onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	e.wait(e.install("P").ID)
	if reqs := rc.all(); len(reqs) != 1 || reqs[0].Path != "/mirror/org/repo/resolve/main/f.bin" || reqs[0].Auth == "" {
		t.Errorf("requests = %+v", reqs)
	}
}

func TestPresetsFileLifecycle(t *testing.T) {
	e := newEnv(t, "http://127.0.0.1:1", onePreset("FIRST", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	ps, loadErr := e.m.Presets()
	if len(ps) != 1 || loadErr != "" {
		t.Fatalf("presets = %+v %q", ps, loadErr)
	}

	// Broken YAML: the error names its line, the last good presets stay.
	bad := "presets:\n  FIRST:\n    name: x\n    files: [\n  oops\n"
	os.WriteFile(e.presets, []byte(bad), 0o644)
	waitFor(t, "the syntax error", func() bool { _, le := e.m.Presets(); return le != "" })
	ps, loadErr = e.m.Presets()
	if len(ps) != 1 || ps[0].ID != "FIRST" || !strings.Contains(loadErr, "line ") {
		t.Errorf("after bad yaml: %+v %q", ps, loadErr)
	}
	if !strings.Contains(e.logs.String(), "presets file invalid") || !strings.Contains(e.logs.String(), "line ") {
		t.Errorf("log lacks the error with its line:\n%s", e.logs.String())
	}

	// Fixed, with one refused preset: the good ones load, the refusal is reported.
	good := onePreset("SECOND", "b/g.bin", hfURL("g.bin"), "") + `  EVIL:
    files:
    - {path: ../../etc/cron.d/x, url: "https://example.com/x"}
`
	os.WriteFile(e.presets, []byte(good), 0o644)
	waitFor(t, "the new presets", func() bool { _, ok := e.m.Preset("SECOND"); return ok })
	ps, loadErr = e.m.Presets()
	if len(ps) != 1 || ps[0].ID != "SECOND" || !strings.Contains(loadErr, "EVIL") || !strings.Contains(loadErr, "climbs out") {
		t.Errorf("after fix: %+v %q", ps, loadErr)
	}
	if !strings.Contains(e.logs.String(), "preset refused") {
		t.Error("the refused preset was not logged")
	}
}

func TestDefaultPresetsFileWritten(t *testing.T) {
	e := newEnv(t, "http://127.0.0.1:1", "", envOpts{noRun: true})
	st, err := os.Stat(e.presets)
	if err != nil {
		t.Fatalf("no default presets file: %v", err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	ps, loadErr := e.m.Presets()
	if loadErr != "" || len(ps) < 4 {
		t.Errorf("default presets = %d, %q", len(ps), loadErr)
	}
	flux, ok := e.m.Preset("FLUX1_DEV")
	if !ok || !flux.Gated || flux.Status != PresetMissing {
		t.Errorf("FLUX1_DEV = %+v", flux)
	}
	if !strings.Contains(e.logs.String(), "wrote default presets file") {
		t.Error("writing the default file was not logged")
	}
	// An existing file is never overwritten.
	os.WriteFile(e.presets, []byte("presets: {}\n"), 0o644)
	if _, err := New(e.m.cfg); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(e.presets); string(b) != "presets: {}\n" {
		t.Error("an existing presets file was replaced")
	}
}

func TestProgressFramesThrottled(t *testing.T) {
	data := randomBytes(1<<20, 13)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, data, serveOpts{piece: 8 << 10, delay: 10 * time.Millisecond}) // ~1.3 s
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	q := e.install("P")
	e.wait(q.ID)
	waitFor(t, "the final frame", func() bool {
		fs := e.pub.of(q.ID)
		return fs[len(fs)-1].d.Status == model.DownloadCompleted
	})
	var progress []frame
	for _, f := range e.pub.of(q.ID) {
		if f.d.Status == model.DownloadRunning && f.d.BytesDone > 0 {
			progress = append(progress, f)
		}
	}
	if len(progress) < 3 {
		t.Fatalf("only %d progress frames", len(progress))
	}
	for i := range progress {
		j := i
		// 900ms: frames are timed on arrival, a little after they are sent.
		for j < len(progress) && progress[j].at.Sub(progress[i].at) < 900*time.Millisecond {
			j++
		}
		if j-i > 4 {
			t.Errorf("%d progress frames within a second from frame %d", j-i, i)
		}
	}
	mid := progress[len(progress)/2].d
	if mid.SpeedBps <= 0 || mid.EtaSeconds == nil || mid.CurrentFile != "a/f.bin" || mid.BytesTotal != int64(len(data)) {
		t.Errorf("a progress frame = %+v", mid)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i].d.BytesDone < progress[i-1].d.BytesDone {
			t.Errorf("bytes went backwards: %d then %d", progress[i-1].d.BytesDone, progress[i].d.BytesDone)
		}
	}
}

type blockingPublisher struct {
	fakePublisher
	release chan struct{}
}

func (p *blockingPublisher) Publish(typ string, data any) {
	<-p.release
	p.fakePublisher.Publish(typ, data)
}

func TestSlowPublisherDoesNotBlockDownloads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, randomBytes(200_000, 14), serveOpts{})
	}))
	defer srv.Close()
	bp := &blockingPublisher{release: make(chan struct{})}
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{cfg: func(c *Config) { c.Publisher = bp }})
	q := e.install("P")
	if d := e.wait(q.ID); d.Status != model.DownloadCompleted {
		t.Fatalf("download = %+v", d)
	}
	close(bp.release)
	waitFor(t, "frames after the publisher recovers", func() bool {
		fs := bp.of(q.ID)
		return len(fs) >= 3 && fs[len(fs)-1].d.Status == model.DownloadCompleted
	})
	fs := bp.of(q.ID)
	if fs[0].d.Status != model.DownloadQueued || fs[1].d.Status != model.DownloadRunning {
		t.Errorf("status frames out of order: %+v", fs)
	}
}

func TestShutdownInterruptsQueuedAndRunning(t *testing.T) {
	yml := onePreset("RUN", "a/r.bin", hfURL("r.bin"), "") + `  WAIT:
    files: [{path: a/w.bin, url: "` + hfURL("w.bin") + `"}]
`
	e := newEnv(t, "http://127.0.0.1:1", yml, envOpts{})
	// Hold RUN's path so its worker waits mid-download; WAIT stays queued
	// behind it (Concurrency 1).
	unlock, _ := e.m.paths.lock(context.Background(), "a/r.bin")
	run := e.install("RUN")
	waitFor(t, "RUN running", func() bool { p, _ := e.m.Preset("RUN"); return p.Status == PresetDownloading })
	wait := e.install("WAIT")
	e.shutdown()
	unlock()
	for _, id := range []int64{run.ID, wait.ID} {
		var d Download
		for _, x := range e.m.Downloads() {
			if x.ID == id {
				d = x
			}
		}
		if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeInterrupted {
			t.Errorf("download %d after shutdown = %+v", id, d)
		}
		if row := e.hist.row(id); row.Status != model.DownloadFailed || row.ErrorMessage != "interrupted" {
			t.Errorf("history = %+v", row)
		}
		fs := e.pub.of(id)
		if len(fs) == 0 || fs[len(fs)-1].d.Status != model.DownloadFailed {
			t.Errorf("no final frame for %d: %+v", id, fs)
		}
	}
}

func TestRunTwiceRefused(t *testing.T) {
	e := newEnv(t, "http://127.0.0.1:1", onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	waitFor(t, "running", func() bool { e.m.mu.Lock(); defer e.m.mu.Unlock(); return e.m.running })
	if err := e.m.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
}

var _ io.Reader = (*slowReader)(nil)

// A preset that names an exact byte count gets a file of that size or an
// error; a file of another size would never count as installed.
func TestExactSizeMismatchRefused(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100000)
	for name, chunked := range map[string]bool{"with Content-Length": false, "chunked": true} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if chunked {
					w.Write(data[:50000])
					w.(http.Flusher).Flush()
					w.Write(data[50000:])
					return
				}
				w.Header().Set("Content-Length", "100000")
				w.Write(data)
			}))
			defer srv.Close()
			yaml := strings.Replace(onePreset("P", "a/exact.bin", hfURL("exact.bin"), ""), "size: 1MB", "size: 99999", 1)
			e := newEnv(t, srv.URL, yaml, envOpts{})
			d := e.wait(e.install("P").ID)
			if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeSizeMismatch || !strings.Contains(d.Error.Message, "99999") {
				t.Fatalf("download = %+v %+v", d, d.Error)
			}
			if exists(filepath.Join(e.models, "a/exact.bin")) || exists(filepath.Join(e.models, "a/exact.bin.part")) {
				t.Fatal("a file of the wrong size was left in the models folder")
			}
		})
	}
}

// A server that cannot resume and keeps dropping the connection at the same
// point is given up on, not retried forever.
func TestDroppingServerWithoutResumeGivesUp(t *testing.T) {
	rc := &recorder{}
	srv := httptest.NewServer(rc.wrap(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000000")
		w.Write(bytes.Repeat([]byte("y"), 300000))
		// then the handler returns: the body is cut short, every time
	}))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{cfg: func(c *Config) { c.MaxRetries = 3 }})
	d := e.wait(e.install("P").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeNetwork {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if n := len(rc.gets("/org/repo/resolve/main/f.bin")); n > 6 {
		t.Fatalf("%d attempts for a server that never gets further", n)
	}
}

func TestFinishedDownloadsAreCapped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	var last Download
	for range KeepFinished + 5 {
		last = e.wait(e.install("P").ID)
	}
	got := e.m.Downloads()
	if len(got) != KeepFinished || got[len(got)-1].ID != last.ID {
		t.Fatalf("%d downloads kept (last %d), want the newest %d", len(got), got[len(got)-1].ID, KeepFinished)
	}
}

// A preset whose name or id is longer than an activity title may be still
// gets its activity rows, shortened.
func TestLongPresetNameStillRecorded(t *testing.T) {
	data := randomBytes(1000, 7)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { serve(w, r, data, serveOpts{}) }))
	defer srv.Close()
	name := strings.Repeat("Ü", 400) // 800 bytes
	id := strings.Repeat("L", 1200)
	// An explicit key ("? …"): YAML allows longer keys that way.
	yml := "presets:\n  ? " + id + "\n  : name: " + name + "\n    files:\n    - path: loras/long.bin\n      url: " + hfURL("long.bin") + "\n      size: 1000\n"
	e := newEnv(t, srv.URL, yml, envOpts{})
	if d := e.wait(e.install(id).ID); d.Status != model.DownloadCompleted {
		t.Fatalf("download = %+v", d)
	}
	acts := e.rec.all()
	if len(acts) != 2 || acts[0].Status != model.ActivityStarted || acts[1].Status != model.ActivityCompleted {
		t.Fatalf("activity = %+v", acts)
	}
	for _, a := range acts {
		if len(a.Subtitle) > model.MaxActivitySubtitle || !strings.HasPrefix(a.Subtitle, "LLL") {
			t.Errorf("subtitle of %d bytes", len(a.Subtitle))
		}
		if len(a.Title) > model.MaxActivityTitle || !utf8.ValidString(a.Title) || !strings.HasPrefix(a.Title, "Downloading Ü") && !strings.HasPrefix(a.Title, "Downloaded Ü") {
			t.Errorf("title %q (%d bytes)", a.Title, len(a.Title))
		}
	}
}

// A dashboard that runs no downloads (read-only) still follows the presets
// file: GETs show the edit and clients get a presets frame.
func TestWatchPresetsWithoutRun(t *testing.T) {
	e := newEnv(t, "http://127.0.0.1:1", onePreset("A", "a/a.bin", hfURL("a.bin"), ""), envOpts{noRun: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.m.WatchPresets(ctx) }()
	defer func() { cancel(); <-done }()
	yml := onePreset("A", "a/a.bin", hfURL("a.bin"), "") + "  B:\n    files: [{path: b/b.bin, url: \"" + hfURL("b.bin") + "\"}]\n"
	if err := os.WriteFile(e.presets, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to be loaded without Run", func() bool { _, ok := e.m.Preset("B"); return ok })
	waitFor(t, "a presets frame naming B", func() bool {
		for _, f := range e.pub.all() {
			for _, p := range f.list.Presets {
				if f.typ == model.FramePresets && p.ID == "B" {
					return true
				}
			}
		}
		return false
	})
}

// A workflow download that leaves the live list takes its remembered files
// with it: the server keeps no more than the list, and its Retry (which the
// UI no longer offers) is refused.
func TestPrunedWorkflowDownloadsForgetTheirFiles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }))
	defer srv.Close()
	e := newEnv(t, srv.URL, onePreset("P", "a/f.bin", hfURL("f.bin"), ""), envOpts{})
	var first Download
	for i := range KeepFinished + 3 {
		d, err := e.m.InstallWorkflow(context.Background(), fmt.Sprintf("wf%d", i), []WorkflowFile{{Directory: "loras", Name: "x.safetensors", URL: srv.URL + "/x"}})
		if err != nil {
			t.Fatal(err)
		}
		d = e.wait(d.ID)
		if i == 0 {
			first = d
		}
	}
	e.m.mu.Lock()
	kept := len(e.m.workflows)
	e.m.mu.Unlock()
	if kept > KeepFinished {
		t.Errorf("%d workflow file lists kept, want at most %d", kept, KeepFinished)
	}
	if _, err := e.m.Retry(context.Background(), first.ID); err == nil {
		t.Error("the retry of a workflow download no longer in the live list was queued")
	}
}
