package downloader

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"dashboard/model"
)

const bigSize = SegmentedMinSize + 12345 // just over the threshold, not a whole number of pieces

var (
	bigOnce sync.Once
	bigData []byte
)

// big is a file large enough to be fetched over many connections, made
// once: tests only read it.
func big() []byte {
	bigOnce.Do(func() { bigData = randomBytes(bigSize, 77) })
	return bigData
}

// segEnv is an environment whose downloads use conns connections and a
// hash window of window bytes.
func segEnv(t *testing.T, endpoint, yml string, conns int, window int64, more func(*Config)) *env {
	return newEnv(t, endpoint, yml, envOpts{cfg: func(c *Config) {
		c.Connections = conns
		c.window = window
		c.SlowAfter = 300 * time.Millisecond
		if more != nil {
			more(c)
		}
	}})
}

// maxConnections is the most connections any progress frame of id showed.
func (e *env) maxConnections(id int64) int {
	most := 0
	for _, f := range e.pub.of(id) {
		most = max(most, f.d.Connections)
	}
	return most
}

func (e *env) noPartLeft(t *testing.T, rel string) {
	t.Helper()
	for _, f := range []string{rel + partSuffix, rel + stateSuffix, rel + stateTmp} {
		if exists(filepath.Join(e.models, f)) {
			t.Errorf("%s left behind", f)
		}
	}
}

func TestSegmentedDownload(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	// Slow enough (about a second) for a few progress frames.
	rs.trouble = func(*served) trouble { return trouble{rate: 16 << 20} }
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, nil)
	q := e.install("BIG")
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	e.noPartLeft(t, "big/f.bin")
	if d.BytesDone != int64(len(data)) || d.BytesTotal != int64(len(data)) || d.Phase != nil || d.Connections != 0 {
		t.Errorf("final download = %+v", d)
	}
	reqs := rs.gets("/org/repo/resolve/main/f.bin")
	piece := pieceSize(16<<20, 4)
	conns := map[int]bool{}
	var covered spans
	for i, r := range reqs {
		conns[r.conn] = true
		if r.auth != "Bearer hf_secret" {
			t.Errorf("request %d to the HuggingFace host without the token: %q", i, r.auth)
		}
		if r.to-r.from > piece {
			t.Errorf("request %d asked for %d bytes, more than a piece (%d)", i, r.to-r.from, piece)
		}
		covered = covered.add(span{r.from, r.from + r.sent.Load()})
	}
	if len(conns) < 4 {
		t.Errorf("%d connections used, want 4", len(conns))
	}
	if n := rs.sentSpans(0).bytes(); n != int64(len(data)) {
		t.Errorf("the server sent %d distinct bytes of %d", n, len(data))
	}
	waitFor(t, "the final frame", func() bool {
		fs := e.pub.of(q.ID)
		return fs[len(fs)-1].d.Status == model.DownloadCompleted
	})
	if most := e.maxConnections(q.ID); most < 2 || most > 4 {
		t.Errorf("frames showed at most %d connections, want 2 to 4", most)
	}
	sawPhase := false
	for _, f := range e.pub.of(q.ID) {
		if f.d.Status == model.DownloadRunning && f.d.Phase != nil && *f.d.Phase == model.PhaseDownloading {
			sawPhase = true
		}
		if f.d.Status != model.DownloadRunning && (f.d.Phase != nil || f.d.Connections != 0) {
			t.Errorf("a %s frame with phase %v and %d connections", f.d.Status, f.d.Phase, f.d.Connections)
		}
	}
	if !sawPhase {
		t.Error("no frame said the download was downloading")
	}
}

// Files under the threshold keep one stream, as before.
func TestSmallFileUsesOneConnection(t *testing.T) {
	data := randomBytes(3<<20, 78)
	rs := newRangeServer(t, data)
	e := segEnv(t, rs.URL(), bigPreset("a/s.bin", hfURL("s.bin"), len(data)), 8, 0, nil)
	if d := e.wait(e.install("BIG").ID); d.Status != model.DownloadCompleted {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if reqs := rs.requests(); len(reqs) != 1 || reqs[0].rng != fmt.Sprintf("bytes=0-%d", pieceSize(defaultWindow, 8)-1) {
		t.Errorf("requests = %+v", reqs)
	}
}

// One connection throttled hard: the idle ones split its range, so the
// file does not wait for it.
func TestSlowConnectionRangeIsSplit(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	rs.trouble = func(r *served) trouble {
		if r.conn == 1 {
			return trouble{rate: 1 << 20}
		}
		return trouble{}
	}
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 0, nil)
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	reqs := rs.requests()
	slow := reqs[0] // the probe, on connection 1, owns the first piece
	piece := pieceSize(defaultWindow, 4)
	if slow.conn != 1 || slow.sent.Load() >= piece {
		t.Fatalf("the slow connection sent %d bytes, its whole piece of %d: nothing was split", slow.sent.Load(), piece)
	}
	split := false
	for _, r := range reqs[1:] {
		if r.conn != 1 && r.from > slow.from && r.from < piece {
			split = true
		}
	}
	if !split {
		t.Error("no other connection took part of the slow connection's range")
	}
	if !strings.Contains(e.logs.String(), "download range split") {
		t.Error("the split was not logged")
	}
}

// A connection cut mid-range: only the rest of that range is asked again,
// the others go on.
func TestDroppedConnectionRangeResumes(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	const cut = 300 << 10
	rs.trouble = func(r *served) trouble {
		if r.n == 3 {
			return trouble{cutAfter: cut}
		}
		return trouble{}
	}
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, nil)
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	reqs := rs.requests()
	dropped := reqs[2]
	resumed := false
	for _, r := range reqs[3:] {
		if r.from == dropped.from {
			t.Errorf("the dropped range was asked again from its start: %+v", r.rng)
		}
		if r.from > dropped.from && r.from <= dropped.from+cut && r.to == dropped.to {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no request resumed the dropped range %s", dropped.rng)
	}
	if !strings.Contains(e.logs.String(), "download range retrying") {
		t.Error("the retry was not logged")
	}
}

// A connection that stalls forever does not hold the file: its range is
// handed to a connection that is waiting, long before the stall timeout.
func TestStalledConnectionRangeTakenOver(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	rs.trouble = func(r *served) trouble {
		if r.n == 2 {
			return trouble{stallAfter: 64 << 10}
		}
		return trouble{}
	}
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, func(c *Config) {
		c.StallTimeout = time.Hour // only the takeover can finish it within the test
	})
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if !strings.Contains(e.logs.String(), "stopped delivering") {
		t.Error("the takeover was not logged")
	}
	// Its rest was asked for from where it stopped, not from its start.
	reqs := rs.requests()
	stalled, resumed := reqs[1], false
	for _, r := range reqs[2:] {
		if r.from > stalled.from && r.from <= stalled.from+64<<10 && r.to >= stalled.to {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("no request took over the stalled range %s from where it stopped", stalled.rng)
	}
}

// One range the server keeps refusing (503) fails the file with the
// network error after the retries, while the other ranges are all fetched.
func TestRangeThatKeepsFailingFailsTheFile(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	const bad = 8 << 20 // a piece's start
	rs.trouble = func(r *served) trouble {
		if r.from == bad {
			return trouble{status: http.StatusServiceUnavailable}
		}
		return trouble{}
	}
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, func(c *Config) {
		c.RetryBase = time.Millisecond
		c.MaxRetries = 3
	})
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeNetwork || !strings.Contains(d.Error.Message, "503") {
		t.Fatalf("download = %s %+v, want failed with %s naming the 503", d.Status, d.Error, model.CodeNetwork)
	}
	asked := 0
	for _, r := range rs.requests() {
		if r.from == bad {
			asked++
		}
	}
	// Retried (by the range, then by the file's attempts), but not for ever.
	if asked < 4 || asked > 16 {
		t.Errorf("the failing range was asked %d times, want 4 to 16 (3 retries of the range, 3 of the file)", asked)
	}
	// The other connections went on past it meanwhile.
	past := int64(0)
	for _, sp := range stateSpans(t, e.models, "big/f.bin") {
		past += max(sp.to-max(sp.from, bad), 0)
	}
	if past < 8<<20 {
		t.Errorf("only %d bytes past the failing range were fetched: it held the others up", past)
	}
}

// A server that answers a Range with 200 gets one stream, as before.
func TestRangeAnsweredWith200UsesOneStream(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	rs.ignoreRange = true
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 8, 0, nil)
	q := e.install("BIG")
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if reqs := rs.requests(); len(reqs) != 1 {
		t.Errorf("%d requests, want the one stream", len(reqs))
	}
	if most := e.maxConnections(q.ID); most > 1 {
		t.Errorf("frames showed %d connections", most)
	}
}

// A server that ignores ranges and keeps dropping the stream: each attempt
// starts over with one request for the whole file, never counted as the
// server's copy changing, until one stream gets through.
func TestRangeIgnoredAndStreamDroppedStartsOverCleanly(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	rs.ignoreRange = true
	rs.trouble = func(r *served) trouble {
		if r.n <= 4 {
			// Further each time (the first past one hash window): every
			// attempt makes progress, so none gives up.
			return trouble{cutAfter: int64(r.n+1) * 10 << 20}
		}
		return trouble{}
	}
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 8, 16<<20, func(c *Config) { c.RetryBase = time.Millisecond })
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if n := len(rs.requests()); n != 5 {
		t.Errorf("%d requests for 4 drops, want 5: one per attempt", n)
	}
	if strings.Contains(e.logs.String(), "changed") {
		t.Errorf("a dropped stream was taken for a changed copy:\n%s", e.logs.String())
	}
}

// Bytes that do not match the checksum fail the file: nothing at the
// final path, no .part, no state.
func TestWrongBytesFailChecksum(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	rs.trouble = func(r *served) trouble {
		if r.n == 3 {
			return trouble{corrupt: true}
		}
		return trouble{}
	}
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, nil)
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeChecksum {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if exists(filepath.Join(e.models, "big/f.bin")) {
		t.Error("a file that failed its checksum is at the final path")
	}
	e.noPartLeft(t, "big/f.bin")
}

// HuggingFace as it behaves: /resolve/ redirects to a signed CDN link that
// expires; the token goes to HuggingFace on every request and never to the
// CDN; the signature never shows.
type cdnFixture struct {
	hf, cdn *rangeServer
	gen     atomic.Int64 // the signature the CDN accepts now
	hfReqs  []*served
	mu      sync.Mutex
}

const secret = "SECRETSIG"

func newCDNFixture(t *testing.T, data []byte, expireEvery int64) *cdnFixture {
	f := &cdnFixture{}
	f.cdn = newRangeServer(t, data)
	f.cdn.set(data, `"cdn-etag-1"`) // a CDN's ETag is not the sha256
	var given atomic.Int64
	f.cdn.trouble = func(r *served) trouble {
		if !strings.Contains(r.query, fmt.Sprintf("X-Amz-Signature=%s%d", secret, f.gen.Load())) {
			return trouble{status: http.StatusForbidden}
		}
		if expireEvery > 0 && given.Add(r.to-r.from) > expireEvery {
			given.Store(0)
			f.gen.Add(1) // every link handed out so far has expired
		}
		return trouble{}
	}
	sum := sha(data)
	f.hf = newRangeServer(t, nil)
	f.hf.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hfReqs = append(f.hfReqs, &served{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization")})
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer hf_secret" {
			http.Error(w, "token", http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Linked-Etag", `"`+sum+`"`)
		w.Header().Set("X-Linked-Size", fmt.Sprint(len(data)))
		w.Header().Set("ETag", `"a-git-sha1"`)
		http.Redirect(w, r, fmt.Sprintf("%s/blobs/%s?X-Amz-Expires=3600&X-Amz-Signature=%s%d", f.cdn.URL(), sum, secret, f.gen.Load()), http.StatusFound)
	})
	return f
}

func (f *cdnFixture) hfRequests() []*served {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*served(nil), f.hfReqs...)
}

// noSecret checks every place a URL could show.
func (e *env) noSecret(t *testing.T, id int64) {
	t.Helper()
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the signature reached the log")
	}
	for _, f := range e.pub.all() {
		if strings.Contains(fmt.Sprintf("%+v", f.d)+fmt.Sprintf("%+v", f.a)+string(f.a.Details), secret) {
			t.Errorf("the signature reached a frame: %+v", f)
		}
	}
	if row := e.hist.row(id); strings.Contains(row.ErrorMessage, secret) {
		t.Error("the signature reached the history")
	}
}

func TestExpiringCDNLinkIsRenewedAndTokenStaysHome(t *testing.T) {
	data := big()
	f := newCDNFixture(t, data, 20<<20)
	e := segEnv(t, f.hf.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, nil)
	q := e.install("BIG")
	d := e.wait(q.ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if f.gen.Load() < 2 {
		t.Fatalf("the link expired %d times; the test wants at least 2", f.gen.Load())
	}
	hf := f.hfRequests()
	if len(hf) < 2 {
		t.Errorf("HuggingFace was asked %d times: the expired link was not renewed", len(hf))
	}
	for _, r := range hf {
		if r.auth != "Bearer hf_secret" {
			t.Errorf("a request to HuggingFace without the token: %+v", r)
		}
	}
	forbidden := 0
	for _, r := range f.cdn.requests() {
		if r.auth != "" {
			t.Errorf("the token reached the CDN: %s %s", r.method, r.rng)
		}
		if r.sent.Load() == 0 && r.method == http.MethodGet {
			forbidden++
		}
	}
	if forbidden == 0 {
		t.Error("the CDN never refused an expired link")
	}
	if !strings.Contains(e.logs.String(), "download link renewed") {
		t.Error("the renewal was not logged")
	}
	e.noSecret(t, q.ID)
}

// A CDN that keeps failing: the error names the file and the host, never
// the signed query.
func TestSignedURLNeverShown(t *testing.T) {
	data := big()
	f := newCDNFixture(t, data, 0)
	f.cdn.trouble = func(r *served) trouble { return trouble{status: http.StatusNotFound} }
	e := segEnv(t, f.hf.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 0, nil)
	q := e.install("BIG")
	d := e.wait(q.ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeNotFound {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	if strings.Contains(d.Error.Message, secret) {
		t.Errorf("error message: %s", d.Error.Message)
	}
	e.noSecret(t, q.ID)

	// A connection that cannot be made at all: Go's error text holds the URL.
	f.cdn.srv.Close()
	q = e.install("BIG")
	d = e.wait(q.ID)
	if d.Status != model.DownloadFailed || d.Error.Code != model.CodeNetwork || strings.Contains(d.Error.Message, secret) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	e.noSecret(t, q.ID)
}

func TestShownURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://cdn.example/blobs/x?X-Amz-Signature=abc&X-Amz-Expires=3600": "https://cdn.example/blobs/x",
		"https://user:pw@host/p?token=t#frag":                                "https://host/p",
		"https://huggingface.co/org/repo/resolve/main/f.bin":                 "https://huggingface.co/org/repo/resolve/main/f.bin",
		"::not a url?Signature=x":                                            "::not a url",
	} {
		if got := shownURL(in); got != want {
			t.Errorf("shownURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// The server's copy changed between a crash and the retry: the file
// starts over at once instead of fetching the rest and failing the
// checksum at the end.
func TestChangedETagAfterCrashStartsOver(t *testing.T) {
	old := big()
	rs := newRangeServer(t, old)
	rs.trouble = func(*served) trouble { return trouble{rate: 8 << 20} }
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config", "presets.yaml"), []byte(bigPreset("big/f.bin", hfURL("f.bin"), len(old))), 0o644); err != nil {
		t.Fatal(err)
	}
	child, _ := startChild(t, "download", "STARTED", "DL_DIR="+dir, "DL_ENDPOINT="+rs.URL(), "DL_CONNS=4", "DL_WINDOW=16777216")
	models := filepath.Join(dir, "models")
	waitFor(t, "a third of the file on disk", func() bool { return stateDone(t, models, "big/f.bin") > int64(len(old))/3 })
	child.Process.Kill()
	child.Wait()
	had := stateSpans(t, models, "big/f.bin").firstGap()

	fresh := randomBytes(len(old), 79)
	rs.set(fresh, "")
	rs.trouble = nil
	time.Sleep(50 * time.Millisecond) // the killed child's requests end
	before := len(rs.requests())
	e := newEnv(t, rs.URL(), "", envOpts{dir: dir, cfg: func(c *Config) {
		c.Connections, c.window, c.SlowAfter = 4, 16<<20, 300*time.Millisecond
	}})
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), fresh) {
		t.Fatalf("download = %+v %+v", d, d.Error)
	}
	after := rs.requests()[before:]
	if after[0].from != had {
		t.Errorf("the retry first asked from %d, the state's first gap is %d", after[0].from, had)
	}
	var sent int64
	for _, r := range after {
		sent += r.sent.Load()
	}
	// The probe that found the new ETag brings one piece, and a split range
	// may have been sent a little past where its connection stopped;
	// fetching the rest of the old copy first would be another two thirds
	// of the file.
	if limit := int64(len(fresh)) * 5 / 4; sent > limit {
		t.Errorf("the retry was sent %d bytes for a file of %d", sent, len(fresh))
	}
	if !strings.Contains(e.logs.String(), "the server's copy changed") {
		t.Error("starting over was not logged")
	}
}

// Cancelling while a resume rehashes what is on disk answers at once.
func TestCancelDuringRehashIsQuick(t *testing.T) {
	const size = 8 << 30
	const prefix = 6 << 30
	etag := `"` + strings.Repeat("ab", 32) + `"`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var from int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &from)
		w.Header().Set("ETag", etag)
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, size-1, int64(size)))
		w.Header().Set("Content-Length", fmt.Sprint(size-from))
		w.WriteHeader(http.StatusPartialContent)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	e := segEnv(t, srv.URL, bigPreset("big/huge.bin", hfURL("huge.bin"), size), 8, 0, nil)
	if err := os.MkdirAll(filepath.Join(e.models, "big"), 0o755); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(e.models, "big/huge.bin"+partSuffix)
	if err := os.WriteFile(part, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(part, size); err != nil { // sparse: no disk space
		t.Fatal(err)
	}
	st := fmt.Sprintf(`{"version":1,"size":%d,"validator":%q,"sha256":%q,"done":[[0,%d]]}`, int64(size), etag, strings.Repeat("ab", 32), int64(prefix))
	if err := os.WriteFile(filepath.Join(e.models, "big/huge.bin"+stateSuffix), []byte(st), 0o644); err != nil {
		t.Fatal(err)
	}
	q := e.install("BIG")
	waitFor(t, "the rehash", func() bool {
		for _, d := range e.m.Downloads() {
			if d.ID == q.ID && d.Phase != nil && *d.Phase == model.PhaseVerifying {
				return true
			}
		}
		return false
	})
	began := time.Now()
	d, err := e.m.Cancel(q.ID)
	took := time.Since(began)
	if err != nil || d.Status != model.DownloadCancelled {
		t.Fatalf("cancel = %+v, %v", d, err)
	}
	if took > time.Second {
		t.Errorf("cancel took %v during the rehash, want under 1 s", took)
	}
	if got := stateSpans(t, e.models, "big/huge.bin"); got.bytes() != int64(prefix) {
		t.Errorf("after the cancel the state names %d bytes, want the %d fetched before", got.bytes(), prefix)
	}
}

// A write that fails (the disk filled) on the last chunk of a range fails
// the download with the disk's error, over many connections and over one:
// the chunk once counted as fetched though it never reached the disk, and
// the hash waited for it for ever.
func TestFailedWriteOnTheLastChunkOfARangeFailsTheDownload(t *testing.T) {
	data := big()
	const window, conns = 16 << 20, 4
	piece := pieceSize(window, conns)
	for _, tc := range []struct {
		name  string
		conns int
		last  func(end int64) bool // which write fails
	}{
		{"many connections", conns, func(end int64) bool { return end%piece == 0 && end > 4*piece }},
		{"one stream", 1, func(end int64) bool { return end == int64(len(data)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := newRangeServer(t, data)
			var fired atomic.Int32
			e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), tc.conns, window, func(c *Config) {
				c.writeFault = func(off, n int64) error {
					if tc.last(off+n) && fired.CompareAndSwap(0, 1) {
						return &os.PathError{Op: "write", Path: "f.bin.part", Err: syscall.ENOSPC}
					}
					return nil
				}
			})
			d := e.wait(e.install("BIG").ID)
			if fired.Load() != 1 {
				t.Fatal("no write failed: the test did not test anything")
			}
			if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeDiskSpace {
				t.Fatalf("download after a failed write = %s %+v, want failed with %s", d.Status, d.Error, model.CodeDiskSpace)
			}
		})
	}
}

// The first state must be saved before the .part takes its full size: a
// full-size .part without a state passes for a complete old-style one after
// a crash, and would fail its checksum instead of resuming. When the state
// cannot be written, the download stops there with the disk's error.
func TestNoFullSizePartWithoutItsState(t *testing.T) {
	data := big()
	rs := newRangeServer(t, data)
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, nil)
	// A folder where the state's temporary file goes: the state cannot be written.
	if err := os.MkdirAll(filepath.Join(e.models, "big", "f.bin"+stateTmp), 0o755); err != nil {
		t.Fatal(err)
	}
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeDisk {
		t.Fatalf("download whose state cannot be written = %s %+v", d.Status, d.Error)
	}
	if fi, err := os.Stat(filepath.Join(e.models, "big/f.bin.part")); err == nil && fi.Size() > 0 {
		t.Fatalf("a %d-byte .part is left without a state", fi.Size())
	}
}

// What was fetched survives cancel-and-retry: the retry asks first for the
// state's first gap, and fetches again at most about a range per connection.
func TestCancelThenRetryResumes(t *testing.T) {
	const conns, window = 4, 8 << 20
	data := big()
	rs := newRangeServer(t, data)
	rs.trouble = func(*served) trouble { return trouble{rate: 8 << 20} }
	e := segEnv(t, rs.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), conns, window, nil)
	q := e.install("BIG")
	waitFor(t, "a third of the file on disk", func() bool { return stateDone(t, e.models, "big/f.bin") > int64(len(data))/3 })
	if d, err := e.m.Cancel(q.ID); err != nil || d.Status != model.DownloadCancelled {
		t.Fatalf("cancel = %+v, %v", d, err)
	}
	kept := stateSpans(t, e.models, "big/f.bin")
	if kept.bytes() == 0 {
		t.Fatal("the cancel kept nothing")
	}
	before := len(rs.requests())
	sentBefore := rs.sentSpans(0)
	rs.trouble = nil
	r, err := e.m.Retry(context.Background(), q.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := e.wait(r.ID); d.Status != model.DownloadCompleted || !bytes.Equal(e.file("big/f.bin"), data) {
		t.Fatalf("retry = %+v %+v", d, d.Error)
	}
	if first := rs.requests()[before]; first.from != kept.firstGap() {
		t.Errorf("the retry first asked from %d, the state's first gap is %d", first.from, kept.firstGap())
	}
	again := intersect(rs.sentSpans(before), sentBefore)
	if bound := conns * pieceSize(window, conns); again > bound {
		t.Errorf("%d bytes fetched again after the cancel, more than a range per connection (%d)", again, bound)
	}
	e.noPartLeft(t, "big/f.bin")
}

// A token revoked mid-file: the CDN link expires, HuggingFace answers the
// renewal with 401, and the file fails with hf_token_required (the UI's
// "Add token"), not a network error; what was fetched is kept.
func TestTokenRevokedMidFileNeedsAToken(t *testing.T) {
	data := big()
	f := newCDNFixture(t, data, 20<<20)
	hf := f.hf.srv.Config.Handler
	f.hf.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.gen.Load() > 0 { // the first link expired: the token is gone too
			http.Error(w, "token revoked", http.StatusUnauthorized)
			return
		}
		hf.ServeHTTP(w, r)
	})
	e := segEnv(t, f.hf.URL(), bigPreset("big/f.bin", hfURL("f.bin"), len(data)), 4, 16<<20, nil)
	d := e.wait(e.install("BIG").ID)
	if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeHFTokenRequired {
		t.Fatalf("download = %s %+v, want failed with %s", d.Status, d.Error, model.CodeHFTokenRequired)
	}
	if kept := stateDone(t, e.models, "big/f.bin"); kept < 16<<20 {
		t.Errorf("only %d bytes kept for the retry", kept)
	}
}
