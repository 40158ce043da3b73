package downloader

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"dashboard/model"
)

// civitaiToken is the one key the fake Civitai accepts.
const civitaiToken = "civ_SECRET_0123456789abcdef"

// fakeCivitai is Civitai as it behaves: the API (model versions), and the
// download URL answering 307 to a signed link on a storage host at another
// address. The storage host (one per file, like R2 buckets behind one
// name) refuses any Authorization header with 400, as Cloudflare R2 does,
// honours Range, and expires links: a signature stops being accepted after
// a number of uses.
type fakeCivitai struct {
	api *httptest.Server

	mu       sync.Mutex
	versions map[int64]*fakeVersion
	reqs     []*served // every request to the Civitai host
}

type fakeVersion struct {
	login bool // 401 without the token, as when the creator requires a login
	early bool // 403 even with it: early access
	files []*fakeCivFile
}

type fakeCivFile struct {
	name, typ, format, fp, size string
	primary                     bool
	data                        []byte
	sha                         string // what the API states; "" → SHA-256 of data, upper case as Civitai writes it
	store                       *rangeServer
	gen                         atomic.Int64 // the signature the storage host accepts now
	uses                        atomic.Int64
	expireAfter                 int64 // accepted requests per signature; 0: never expires
	badAuth                     atomic.Int64
}

func newFakeCivitai(t *testing.T) *fakeCivitai {
	f := &fakeCivitai{versions: map[int64]*fakeVersion{}}
	f.api = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.api.CloseClientConnections()
		f.api.Close()
	})
	return f
}

// add makes a version whose files are fs; each file gets its storage host.
func (f *fakeCivitai) add(t *testing.T, id int64, v *fakeVersion) *fakeVersion {
	for _, cf := range v.files {
		cf.store = newRangeServer(t, cf.data)
		cf.store.plainETag = true
		cf.store.set(cf.data, fmt.Sprintf(`"r2-%d-%s"`, id, cf.name)) // an R2 ETag is not the SHA-256
		cf.store.trouble = func(r *served) trouble {
			if r.auth != "" {
				cf.badAuth.Add(1)
				return trouble{status: http.StatusBadRequest}
			}
			if !strings.Contains(r.query, fmt.Sprintf("X-Amz-Signature=SIG%d", cf.gen.Load())) {
				return trouble{status: http.StatusForbidden} // expired
			}
			if cf.expireAfter > 0 && cf.uses.Add(1) >= cf.expireAfter {
				cf.uses.Store(0)
				cf.gen.Add(1) // every link handed out so far has expired
			}
			return trouble{}
		}
	}
	f.mu.Lock()
	f.versions[id] = v
	f.mu.Unlock()
	return v
}

func (f *fakeCivitai) requests() []*served {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*served(nil), f.reqs...)
}

// asked returns the requests to the Civitai host whose path starts with prefix.
func (f *fakeCivitai) asked(prefix string) []*served {
	var out []*served
	for _, r := range f.requests() {
		if strings.HasPrefix(r.path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

func jsonError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q}`, msg)
}

func (f *fakeCivitai) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.reqs = append(f.reqs, &served{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, auth: r.Header.Get("Authorization"), rng: r.Header.Get("Range")})
	f.mu.Unlock()
	good := r.Header.Get("Authorization") == "Bearer "+civitaiToken
	if r.Header.Get("Authorization") != "" && !good {
		jsonError(w, http.StatusUnauthorized, "Unauthorized")
		return
	}
	idOf := func(prefix string) (*fakeVersion, int64) {
		id, _ := strconv.ParseInt(strings.TrimPrefix(r.URL.Path, prefix), 10, 64)
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.versions[id], id
	}
	switch {
	case strings.HasPrefix(r.URL.Path, "/api/v1/model-versions/"):
		v, id := idOf("/api/v1/model-versions/")
		if v == nil {
			jsonError(w, http.StatusNotFound, "Model version not found")
			return
		}
		type fileJSON struct {
			ID       int               `json:"id"`
			Name     string            `json:"name"`
			Type     string            `json:"type"`
			SizeKB   float64           `json:"sizeKB"`
			Metadata map[string]any    `json:"metadata"`
			Hashes   map[string]string `json:"hashes"`
			Primary  bool              `json:"primary,omitempty"`
			URL      string            `json:"downloadUrl"`
		}
		var files []fileJSON
		for i, cf := range v.files {
			sum := cf.sha
			if sum == "" {
				sum = strings.ToUpper(sha(cf.data))
			}
			files = append(files, fileJSON{
				ID: i + 1, Name: cf.name, Type: cf.typ, SizeKB: float64(len(cf.data)) / 1024,
				Metadata: map[string]any{"format": cf.format, "size": cf.size, "fp": cf.fp},
				Hashes:   map[string]string{"AutoV2": "ABCDEF0123", "SHA256": sum, "CRC32": "DAEE95B7"},
				Primary:  cf.primary, URL: fmt.Sprintf("https://civitai.com/api/download/models/%d", id),
			})
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"id": id, "modelId": 1000 + id, "name": "v1", "files": files})
	case strings.HasPrefix(r.URL.Path, "/api/download/models/"):
		v, _ := idOf("/api/download/models/")
		switch {
		case v == nil:
			jsonError(w, http.StatusNotFound, "Model not found")
		case v.login && !good:
			jsonError(w, http.StatusUnauthorized, "The creator of this asset requires you to be logged in to download it")
		case v.early:
			jsonError(w, http.StatusForbidden, "This asset is in Early Access")
		default:
			cf := v.pick(r.URL.Query())
			http.Redirect(w, r, fmt.Sprintf("%s/file/%s?X-Amz-Expires=86400&response-content-disposition=attachment&X-Amz-Signature=SIG%d",
				cf.store.URL(), cf.name, cf.gen.Load()), http.StatusTemporaryRedirect)
		}
	default:
		jsonError(w, http.StatusNotFound, "Not found")
	}
}

// pick is the fake's own choice of file: the one whose fp and size the
// query names, else the primary one.
func (v *fakeVersion) pick(q url.Values) *fakeCivFile {
	for _, cf := range v.files {
		if (q.Get("fp") != "" || q.Get("size") != "") && (q.Get("fp") == "" || q.Get("fp") == cf.fp) && (q.Get("size") == "" || q.Get("size") == cf.size) {
			return cf
		}
	}
	for _, cf := range v.files {
		if cf.primary {
			return cf
		}
	}
	return v.files[0]
}

// civitaiEnv is an environment whose Civitai endpoint is f; token is the
// Civitai token in use (changeable while it runs).
type civitaiEnv struct {
	*env
	mu    sync.Mutex
	token string
}

func (c *civitaiEnv) setToken(tok string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.token = tok
}

func newCivitaiEnv(t *testing.T, f *fakeCivitai, yml, token string, conns int, window int64) *civitaiEnv {
	c := &civitaiEnv{token: token}
	c.env = segEnv(t, "http://127.0.0.1:1", yml, conns, window, func(cfg *Config) {
		cfg.CivitaiEndpoint = f.api.URL
		cfg.CivitaiToken = func(context.Context) string {
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.token
		}
	})
	return c
}

func civitaiPreset(id, path, rawURL, extra string) string {
	return fmt.Sprintf("presets:\n  %s:\n    name: %s\n    files:\n    - path: %s\n      url: %q\n%s", id, id, path, rawURL, extra)
}

// noCivitaiLeak checks that the Civitai token went nowhere but the Civitai
// host's headers: not to a storage host, not in any query, not into a log
// line, frame, activity row or the history.
func (f *fakeCivitai) noLeak(t *testing.T, e *env) {
	t.Helper()
	f.mu.Lock()
	versions := f.versions
	f.mu.Unlock()
	for _, v := range versions {
		for _, cf := range v.files {
			if n := cf.badAuth.Load(); n > 0 {
				t.Errorf("%s: %d requests to the storage host carried Authorization", cf.name, n)
			}
			for _, r := range cf.store.requests() {
				if r.auth != "" || strings.Contains(r.query, "token") || strings.Contains(r.query, civitaiToken) {
					t.Errorf("a storage request carried the token: auth %q query %q", r.auth, r.query)
				}
			}
		}
	}
	for _, r := range f.requests() {
		if strings.Contains(r.query, "token") {
			t.Errorf("the token went to Civitai in a query: %s?%s", r.path, r.query)
		}
	}
	if strings.Contains(e.logs.String(), civitaiToken) || strings.Contains(e.logs.String(), "X-Amz-Signature") {
		t.Error("the token or a signed link reached the log")
	}
	for _, fr := range e.pub.all() {
		if s := fmt.Sprintf("%+v %+v %s %+v", fr.d, fr.a, fr.a.Details, fr.list); strings.Contains(s, civitaiToken) || strings.Contains(s, "X-Amz-Signature") {
			t.Errorf("a frame holds the token or a signed link: %s", s)
		}
	}
	e.hist.mu.Lock()
	for _, row := range e.hist.rows {
		if strings.Contains(row.ErrorMessage, civitaiToken) {
			t.Error("the token reached the history")
		}
	}
	e.hist.mu.Unlock()
}

func TestCivitaiPick(t *testing.T) {
	v := civitaiVersion{Files: []civitaiVersionFile{
		{Name: "pruned-fp16", Type: "Model", Primary: true},
		{Name: "full-fp32", Type: "Model"},
		{Name: "vae", Type: "VAE"},
		{Name: "full-fp16", Type: "Model"},
	}}
	meta := map[string][3]string{"pruned-fp16": {"SafeTensor", "pruned", "fp16"}, "full-fp32": {"SafeTensor", "full", "fp32"}, "vae": {"SafeTensor", "", ""}, "full-fp16": {"PickleTensor", "full", "fp16"}}
	for i := range v.Files {
		m := meta[v.Files[i].Name]
		v.Files[i].Metadata.Format, v.Files[i].Metadata.Size, v.Files[i].Metadata.FP = m[0], m[1], m[2]
	}
	for query, want := range map[string]string{
		"":                                 "pruned-fp16",
		"type=Model":                       "pruned-fp16", // several match: the primary one
		"fp=fp32":                          "full-fp32",
		"size=full&fp=fp32":                "full-fp32",
		"type=vae":                         "vae", // case aside
		"size=full":                        "full-fp32",
		"size=full&format=PickleTensor":    "full-fp16",
		"fp=bf16":                          "pruned-fp16", // nothing matches: the primary one
		"type=Model&format=SafeTensor&x=1": "pruned-fp16",
	} {
		q, _ := url.ParseQuery(query)
		if got, ok := v.pick(q); !ok || got.Name != want {
			t.Errorf("pick(%q) = %q, %v; want %q", query, got.Name, ok, want)
		}
	}
	if _, ok := (civitaiVersion{Files: []civitaiVersionFile{{Name: "a"}}}).pick(url.Values{}); ok {
		t.Error("a version without a primary file named one")
	}
}

// A public model: no token needed or sent; the size and the upper-case
// SHA-256 come from the API; the bytes from the storage host.
func TestCivitaiPublicModel(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(3<<20+5, 91)
	f.add(t, 101, &fakeVersion{files: []*fakeCivFile{{name: "lora.safetensors", typ: "Model", format: "SafeTensor", primary: true, data: data}}})
	yml := civitaiPreset("LORA", "loras/lora.safetensors", "https://civitai.com/api/download/models/101?type=Model&format=SafeTensor", "")
	e := newCivitaiEnv(t, f, yml, "", 4, 0)

	// presets.yaml is read without asking Civitai anything.
	if p, ok := e.m.Preset("LORA"); !ok || p.Files[0].SizeBytes != 0 {
		t.Fatalf("preset = %+v", p)
	}
	if reqs := f.requests(); len(reqs) != 0 {
		t.Fatalf("loading presets.yaml asked Civitai: %+v", reqs[0])
	}

	q := e.install("LORA")
	if q.BytesTotal != int64(len(data)) {
		t.Errorf("queued with bytes_total %d, want the API's size %d", q.BytesTotal, len(data))
	}
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("loras/lora.safetensors"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if strings.Contains(e.logs.String(), "download unverified") {
		t.Error("the API's SHA-256 was not used to verify the file")
	}
	if n := len(f.asked("/api/v1/model-versions/101")); n != 1 {
		t.Errorf("the API was asked %d times about the version, want once", n)
	}
	for _, r := range f.requests() {
		if r.auth != "" {
			t.Errorf("a token went to Civitai although none is set: %s", r.path)
		}
	}
	e.noPartLeft(t, "loras/lora.safetensors")
	f.noLeak(t, e.env)
}

// The API's SHA-256 is enforced: a file that does not match fails with
// checksum_mismatch and nothing reaches the final path.
func TestCivitaiWrongHash(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(2<<20, 92)
	f.add(t, 102, &fakeVersion{files: []*fakeCivFile{{name: "m.safetensors", typ: "Model", primary: true, data: data, sha: strings.Repeat("AB", 32)}}})
	e := newCivitaiEnv(t, f, civitaiPreset("M", "checkpoints/m.safetensors", "https://civitai.com/api/download/models/102", ""), civitaiToken, 4, 0)
	d := e.wait(e.install("M").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeChecksum || !strings.Contains(d.Error.Message, strings.Repeat("ab", 32)) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if exists(filepath.Join(e.models, "checkpoints/m.safetensors")) {
		t.Error("a file that failed its checksum is at the final path")
	}
	e.noPartLeft(t, "checkpoints/m.safetensors")
	// The token goes to the API too: early-access versions show only to it.
	if meta := f.asked("/api/v1/model-versions/102"); len(meta) != 1 || meta[0].auth != "Bearer "+civitaiToken {
		t.Errorf("the API was asked %+v", meta)
	}
	f.noLeak(t, e.env)
}

// A sha256 in presets.yaml wins over the API's.
func TestCivitaiPresetSHAWins(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(1<<20, 93)
	f.add(t, 103, &fakeVersion{files: []*fakeCivFile{{name: "m.safetensors", typ: "Model", primary: true, data: data, sha: strings.Repeat("CD", 32)}}})
	yml := civitaiPreset("M", "loras/m.safetensors", "https://civitai.com/api/download/models/103", "      sha256: "+sha(data)+"\n")
	e := newCivitaiEnv(t, f, yml, "", 1, 0)
	if d := e.wait(e.install("M").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
}

// The query picks one of the version's files: its checksum is the one
// checked, and the download URL keeps the query.
func TestCivitaiQuerySelectsFile(t *testing.T) {
	f := newFakeCivitai(t)
	pruned, full := randomBytes(1<<20, 94), randomBytes(1<<20+99, 95)
	f.add(t, 104, &fakeVersion{files: []*fakeCivFile{
		{name: "pruned.safetensors", typ: "Model", format: "SafeTensor", size: "pruned", fp: "fp16", primary: true, data: pruned},
		{name: "full.safetensors", typ: "Model", format: "SafeTensor", size: "full", fp: "fp32", data: full},
	}})
	// civitai.red is the same site: fetched from the endpoint too.
	yml := civitaiPreset("FULL", "checkpoints/full.safetensors", "https://civitai.red/api/download/models/104?type=Model&format=SafeTensor&size=full&fp=fp32", "")
	e := newCivitaiEnv(t, f, yml, "", 1, 0)
	q := e.install("FULL")
	if q.BytesTotal != int64(len(full)) {
		t.Errorf("bytes_total %d, want the full file's %d", q.BytesTotal, len(full))
	}
	if d := e.wait(q.ID); d.Status != model.DownloadCompleted || !bytes.Equal(e.file("checkpoints/full.safetensors"), full) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	dl := f.asked("/api/download/models/104")
	if len(dl) == 0 || !strings.Contains(dl[0].query, "fp=fp32") {
		t.Errorf("download requests %+v", dl)
	}
}

// A model whose creator requires a login: without a token Install refuses
// up front (Civitai answered the probe 401, nothing was queued, the
// storage host was not asked); with one it installs, the token going as a
// Bearer header to Civitai and nowhere else.
func TestCivitaiLoginRequired(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(2<<20+3, 96)
	v := f.add(t, 105, &fakeVersion{login: true, files: []*fakeCivFile{{name: "m.safetensors", typ: "Model", primary: true, data: data}}})
	e := newCivitaiEnv(t, f, civitaiPreset("LOGIN", "loras/m.safetensors", "https://civitai.com/api/download/models/105", ""), "", 4, 0)

	_, err := e.m.Install(context.Background(), "LOGIN")
	if model.ErrorCode(err) != model.CodeCivitaiTokenRequired || !strings.Contains(err.Error(), "Civitai token") {
		t.Fatalf("install without a token: %v", err)
	}
	if len(e.m.Downloads()) != 0 {
		t.Fatal("something was queued")
	}
	probes := f.asked("/api/download/models/105")
	if len(probes) != 1 || probes[0].method != http.MethodGet || probes[0].auth != "" {
		t.Fatalf("probes = %+v", probes)
	}
	if n := len(v.files[0].store.requests()); n != 0 {
		t.Fatalf("the storage host was asked %d times", n)
	}

	e.setToken(civitaiToken)
	d := e.wait(e.install("LOGIN").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("loras/m.safetensors"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	dl := f.asked("/api/download/models/105")
	if len(dl) < 2 {
		t.Fatalf("download requests %+v", dl)
	}
	for _, r := range dl[1:] {
		if r.auth != "Bearer "+civitaiToken {
			t.Errorf("a request to Civitai without the token: %+v", r)
		}
	}
	if meta := f.asked("/api/v1/model-versions/105"); len(meta) != 1 {
		t.Errorf("the API was asked %d times about the version; its answer is kept", len(meta))
	}
	if len(v.files[0].store.requests()) == 0 {
		t.Error("the storage host was never asked")
	}
	f.noLeak(t, e.env)
}

// A token Civitai no longer accepts (set, so Install does not probe): the
// download fails with civitai_token_required, and the JSON Civitai answers
// with is never written to disk.
func TestCivitaiRevokedToken(t *testing.T) {
	f := newFakeCivitai(t)
	f.add(t, 106, &fakeVersion{login: true, files: []*fakeCivFile{{name: "m.safetensors", typ: "Model", primary: true, data: randomBytes(1<<20, 97)}}})
	e := newCivitaiEnv(t, f, civitaiPreset("LOGIN", "loras/m.safetensors", "https://civitai.com/api/download/models/106", ""), "civ_revoked_0000000000000", 1, 0)
	d := e.wait(e.install("LOGIN").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeCivitaiTokenRequired || !strings.Contains(d.Error.Message, "Civitai token in Settings") {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if exists(filepath.Join(e.models, "loras/m.safetensors")) {
		t.Error("something is at the final path")
	}
	e.noPartLeft(t, "loras/m.safetensors")
	if strings.Contains(e.logs.String(), "civ_revoked") {
		t.Error("the token reached the log")
	}
}

// A verify that asks Civitai for the checksum with a revoked token says a
// token is needed, so the UI offers to set one, not that the network failed.
func TestCivitaiVerifyWithRevokedToken(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(1<<20, 96)
	f.add(t, 112, &fakeVersion{files: []*fakeCivFile{{name: "v.safetensors", typ: "Model", primary: true, data: data}}})
	e := newCivitaiEnv(t, f, civitaiPreset("V", "loras/v.safetensors", "https://civitai.com/api/download/models/112", ""), "civ_revoked_0000000000000", 1, 0)
	if err := os.MkdirAll(filepath.Join(e.models, "loras"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.models, "loras/v.safetensors"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.wait(e.verify("V").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeCivitaiTokenRequired {
		t.Fatalf("verify with a revoked token = %+v %+v", d, d.Error)
	}
	if strings.Contains(e.logs.String(), "civ_revoked") || strings.Contains(d.Error.Message, "civ_revoked") {
		t.Error("the token reached the log or the error")
	}
}

// Early access: Civitai answers 403 even with a good token.
func TestCivitaiEarlyAccess(t *testing.T) {
	f := newFakeCivitai(t)
	f.add(t, 107, &fakeVersion{early: true, files: []*fakeCivFile{{name: "m.safetensors", typ: "Model", primary: true, data: randomBytes(1<<20, 98)}}})
	e := newCivitaiEnv(t, f, civitaiPreset("EARLY", "loras/m.safetensors", "https://civitai.com/api/download/models/107", ""), civitaiToken, 1, 0)
	d := e.wait(e.install("EARLY").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeCivitaiAccessDenied || !strings.Contains(d.Error.Message, "early access") {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if n := len(f.asked("/api/download/models/107")); n != 1 {
		t.Errorf("Civitai was asked %d times; a refusal is not retried", n)
	}
	e.noPartLeft(t, "loras/m.safetensors")
	f.noLeak(t, e.env)
}

// A large file comes over several connections from the storage host, which
// honours Range; none of them carries the token.
func TestCivitaiLargeFileManyConnections(t *testing.T) {
	f := newFakeCivitai(t)
	data := big()
	v := f.add(t, 108, &fakeVersion{login: true, files: []*fakeCivFile{{name: "big.safetensors", typ: "Model", primary: true, data: data}}})
	v.files[0].store.trouble = wrapTrouble(v.files[0].store.trouble, trouble{rate: 32 << 20})
	e := newCivitaiEnv(t, f, civitaiPreset("BIG", "checkpoints/big.safetensors", "https://civitai.com/api/download/models/108", ""), civitaiToken, 4, 16<<20)
	q := e.install("BIG")
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("checkpoints/big.safetensors"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	conns := map[int]bool{}
	for _, r := range v.files[0].store.requests() {
		conns[r.conn] = true
	}
	if len(conns) < 2 {
		t.Errorf("the storage host saw %d connections, want several", len(conns))
	}
	if most := e.maxConnections(q.ID); most < 2 {
		t.Errorf("frames showed at most %d connections", most)
	}
	f.noLeak(t, e.env)
}

// wrapTrouble adds extra to what a storage host's rule answers for the
// requests it lets through.
func wrapTrouble(rule func(*served) trouble, extra trouble) func(*served) trouble {
	return func(r *served) trouble {
		tr := rule(r)
		if tr.status != 0 {
			return tr
		}
		return extra
	}
}

// The storage link expires mid-download: it is asked for again from the
// download URL (with the token, to Civitai), and only what is missing is
// fetched again.
func TestCivitaiExpiredLinkMidDownload(t *testing.T) {
	f := newFakeCivitai(t)
	data := big()
	v := f.add(t, 109, &fakeVersion{login: true, files: []*fakeCivFile{{name: "big.safetensors", typ: "Model", primary: true, data: data, expireAfter: 5}}})
	cf := v.files[0]
	e := newCivitaiEnv(t, f, civitaiPreset("BIG", "checkpoints/big.safetensors", "https://civitai.com/api/download/models/109", ""), civitaiToken, 4, 16<<20)
	q := e.install("BIG")
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("checkpoints/big.safetensors"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if cf.gen.Load() < 2 {
		t.Fatalf("the link expired %d times; the test wants at least 2", cf.gen.Load())
	}
	refused, sent := 0, int64(0)
	for _, r := range cf.store.requests() {
		if r.sent.Load() == 0 && r.method == http.MethodGet {
			refused++
		}
		sent += r.sent.Load()
	}
	if refused == 0 {
		t.Error("the storage host never refused an expired link")
	}
	// Starting over would send the file twice; a range or two may be sent
	// again when a connection was slow, never the file.
	if piece := pieceSize(16<<20, 4); sent > int64(len(data))+2*piece {
		t.Errorf("the storage host sent %d bytes for a file of %d: more than the missing ranges were fetched again", sent, len(data))
	}
	dl := f.asked("/api/download/models/109")
	if len(dl) < 3 { // the probe and at least two renewals
		t.Errorf("Civitai was asked %d times: the expired link was not asked for again", len(dl))
	}
	for _, r := range dl {
		if r.auth != "Bearer "+civitaiToken || r.method != http.MethodGet {
			t.Errorf("a renewal without the token, or not a GET: %+v", r)
		}
	}
	if !strings.Contains(e.logs.String(), "download link renewed") {
		t.Error("the renewal was not logged")
	}
	f.noLeak(t, e.env)
}

// A workflow's Civitai link gets the same treatment as a preset's: the
// API's checksum, the token to Civitai only.
func TestCivitaiWorkflowInstall(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(1<<20+1, 99)
	f.add(t, 110, &fakeVersion{files: []*fakeCivFile{{name: "w.safetensors", typ: "Model", primary: true, data: data, sha: strings.Repeat("EF", 32)}}})
	e := newCivitaiEnv(t, f, "presets: {}\n", civitaiToken, 1, 0)
	q, err := e.m.InstallWorkflow(context.Background(), "wf", []WorkflowFile{{Directory: "loras", Name: "w.safetensors", URL: "https://civitai.com/api/download/models/110"}})
	if err != nil {
		t.Fatal(err)
	}
	// The API's (wrong) checksum was applied: the file is refused.
	if d := e.wait(q.ID); d.Status != model.DownloadFailed || d.Error.Code != model.CodeChecksum {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if meta := f.asked("/api/v1/model-versions/110"); len(meta) == 0 {
		t.Error("the API was not asked about the workflow's file")
	}
	f.noLeak(t, e.env)
}

// CivitaiFile is what verify uses to learn a Civitai file's checksum.
func TestCivitaiFile(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(10_000, 100)
	f.add(t, 111, &fakeVersion{files: []*fakeCivFile{{name: "x.safetensors", typ: "Model", primary: true, data: data}}})
	e := newCivitaiEnv(t, f, "presets: {}\n", "", 1, 0)
	got, ok, err := e.m.CivitaiFile(context.Background(), "https://civitai.com/api/download/models/111")
	if err != nil || !ok || got.SHA256 != sha(data) || got.Name != "x.safetensors" || got.VersionID != 111 || got.SizeBytes != int64(len(data)) {
		t.Fatalf("CivitaiFile = %+v %v %v", got, ok, err)
	}
	e.m.CivitaiFile(context.Background(), "https://civitai.com/api/download/models/111?type=Model")
	if n := len(f.asked("/api/v1/model-versions/111")); n != 1 {
		t.Errorf("the API was asked %d times; the answer is kept", n)
	}
	if _, ok, _ := e.m.CivitaiFile(context.Background(), hfURL("x.bin")); ok {
		t.Error("a HuggingFace URL taken for a Civitai one")
	}
	if _, ok, err := e.m.CivitaiFile(context.Background(), "https://civitai.com/api/download/models/999"); !ok || err == nil {
		t.Errorf("an unknown version: ok %v err %v", ok, err)
	}
}

// A verify checks a Civitai file against the SHA-256 Civitai's API states:
// a sound file passes, a flipped byte is corrupt; neither the storage host
// nor anyone but Civitai sees the token.
func TestCivitaiVerify(t *testing.T) {
	f := newFakeCivitai(t)
	data := randomBytes(1<<20+7, 95)
	f.add(t, 111, &fakeVersion{files: []*fakeCivFile{{name: "v.safetensors", typ: "Model", primary: true, data: data}}})
	e := newCivitaiEnv(t, f, civitaiPreset("V", "loras/v.safetensors", "https://civitai.com/api/download/models/111", ""), civitaiToken, 2, 0)
	if d := e.wait(e.install("V").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("install = %+v %+v", d, d.Error)
	}
	if d := e.wait(e.verify("V").ID); d.Status != model.DownloadCompleted || len(d.Unverifiable) != 0 {
		t.Fatalf("verify of a sound file = %+v %+v", d, d.Error)
	}
	path := filepath.Join(e.models, "loras/v.safetensors")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d := e.wait(e.verify("V").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeChecksum || !strings.Contains(d.Error.Message, "loras/v.safetensors") {
		t.Fatalf("verify of a flipped byte = %+v %+v", d, d.Error)
	}
	if pf := e.presetFile("V", "loras/v.safetensors"); pf.Installed || !pf.Corrupt {
		t.Fatalf("file after the failed verify: %+v", pf)
	}
	f.noLeak(t, e.env)
}
