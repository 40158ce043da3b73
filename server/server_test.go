package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"dashboard/activity"
	"dashboard/db"
	"dashboard/downloader"
	"dashboard/model"
	"dashboard/realtime"
	"dashboard/server"
	"dashboard/settings"
	"dashboard/system"
	"dashboard/ui"
)

// goodToken is what the fake HuggingFace accepts.
const goodToken = "hf_testTokenAbcdefghijklmnopWXYZ"

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

// fakeHF answers whoami-v2 like HuggingFace: 200 for goodToken, 401 otherwise.
func fakeHF(t testing.TB) *httptest.Server {
	t.Helper()
	hf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/resolve/main/") {
			serveModelFile(w, r)
			return
		}
		if r.URL.Path != "/api/whoami-v2" {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+goodToken {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"Invalid credentials in Authorization header"}`)
			return
		}
		io.WriteString(w, `{"type":"user","name":"alice","auth":{"type":"access_token","accessToken":{"displayName":"pod","role":"read"}}}`)
	}))
	t.Cleanup(hf.Close)
	return hf
}

// goodCivitaiToken is what the fake Civitai accepts; forbiddenCivitaiToken
// it knows but refuses (403).
const (
	goodCivitaiToken      = "civ0123456789abcdef0123456789abcd"
	forbiddenCivitaiToken = "civBannedAccount000000000000000"
)

// fakeCivitai answers /api/v1/me like Civitai: 200 with the account for
// goodCivitaiToken, 403 for forbiddenCivitaiToken, 401 otherwise; and
// serves /api/download/models/{id}: 401 without the good token for
// version 1 (its creator requires a login), the bytes for any other.
func fakeCivitai(t testing.TB) *httptest.Server {
	t.Helper()
	c := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/api/v1/me" && auth == "Bearer "+goodCivitaiToken:
			io.WriteString(w, `{"id":12345,"username":"carol","tier":"free","status":"active","isMember":false,"subscriptions":[]}`)
		case r.URL.Path == "/api/v1/me" && auth == "Bearer "+forbiddenCivitaiToken:
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":"Forbidden"}`)
		case r.URL.Path == "/api/download/models/1" && auth != "Bearer "+goodCivitaiToken:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"Unauthorized","message":"The creator of this asset requires you to be logged in to download it"}`)
		case strings.HasPrefix(r.URL.Path, "/api/download/models/"):
			w.Header().Set("Content-Type", "application/octet-stream")
			serveModelFile(w, r)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"Unauthorized"}`)
		}
	}))
	t.Cleanup(c.Close)
	return c
}

// fileBytes is the content the fake HuggingFace serves for a file path:
// deterministic, so a test can check what landed on disk.
func fileBytes(path string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) ^ path[i%len(path)]
	}
	return b
}

// serveModelFile serves /{org}/{repo}/resolve/main/{file}: repos named
// "gated" need goodToken; files named slow-* trickle out.
func serveModelFile(w http.ResponseWriter, r *http.Request) {
	if strings.Contains(r.URL.Path, "/gated/") && r.Header.Get("Authorization") != "Bearer "+goodToken {
		w.Header().Set("X-Error-Code", "GatedRepo")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	n := 256 << 10
	slow := strings.Contains(r.URL.Path, "/slow-")
	if slow {
		n = 4 << 20
	}
	body := fileBytes(r.URL.Path, n)
	w.Header().Set("Content-Length", strconv.Itoa(n))
	if r.Method == http.MethodHead {
		return
	}
	if !slow {
		w.Write(body)
		return
	}
	for i := 0; i < n; i += 64 << 10 {
		if _, err := w.Write(body[i : i+64<<10]); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(25 * time.Millisecond)
	}
}

type env struct {
	URL         string
	PresetsFile string
	Store       *db.Store
	Hub         *realtime.Hub
	Logs        *syncBuffer
	srv         *server.Server
	ln          net.Listener
	stop        func()
}

type options struct {
	hfEndpoint string
	envToken   string
	password   string
	sessionKey []byte // nil: the key the database keeps, as in production
	dir        string // the database's folder, to start again on the same one; "" for a new one
	presets    string // presets.yaml content; empty means no presets
	modelsDir  string
	logs       *syncBuffer
	mode       func() model.Mode
	guard      func(context.Context) error // the store's write guard
	// Hosts and proxies.
	hostname       string
	allowedHosts   []string
	trustedProxies string // comma-separated, as TRUSTED_PROXIES
	hub            realtime.Options
	// The pod at a glance.
	volumeSize  int64         // VOLUME_SIZE_GB in bytes
	systemEvery time.Duration // the system frame's interval; 0: 5 s

	// Civitai: its endpoint ("" → a fakeCivitai) and CIVITAI_TOKEN.
	civitaiEndpoint string
	civitaiEnvToken string
}

func start(t testing.TB, o options) *env {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	logs := o.logs
	if logs == nil {
		logs = &syncBuffer{}
	}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx := context.Background()
	store, err := db.Open(ctx, filepath.Join(dir, "dashboard.db"), db.Options{Logger: log, Guard: o.guard})
	if err != nil {
		t.Fatal(err)
	}
	if o.hfEndpoint == "" {
		o.hfEndpoint = fakeHF(t).URL
	}
	if o.civitaiEndpoint == "" {
		o.civitaiEndpoint = fakeCivitai(t).URL
	}
	var mon *system.Monitor
	o.hub.Logger = log
	o.hub.OnWatch = func(w bool) { mon.Watch(w) }
	hub := realtime.New(o.hub)
	sets := settings.New(settings.Config{
		Store: store, Publisher: hub, Logger: log, EnvToken: o.envToken, HFEndpoint: o.hfEndpoint,
		CivitaiEnvToken: o.civitaiEnvToken, CivitaiEndpoint: o.civitaiEndpoint,
	})
	acts := activity.New(activity.Config{Store: store, Publisher: hub, Logger: log, RetentionDays: sets.RetentionDays})
	presets := filepath.Join(dir, "presets.yaml")
	if o.presets == "" {
		o.presets = "presets: {}\n"
	}
	if o.modelsDir == "" {
		o.modelsDir = filepath.Join(dir, "models")
	}
	if err := os.WriteFile(presets, []byte(o.presets), 0o644); err != nil {
		t.Fatal(err)
	}
	mon = system.New(system.Config{Workspace: dir, ModelsDir: o.modelsDir, Publisher: hub, Logger: log, VolumeSize: o.volumeSize, Interval: o.systemEvery})
	dl, err := downloader.New(downloader.Config{
		PresetsFile: presets, ModelsDir: o.modelsDir, HFEndpoint: o.hfEndpoint, RetryBase: 10 * time.Millisecond,
		Token: sets.Token, CivitaiEndpoint: o.civitaiEndpoint, CivitaiToken: sets.CivitaiToken,
		History: store, Files: store, Recorder: acts, Publisher: hub, Logger: log, ModelFiles: mon,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.sessionKey == nil {
		if o.sessionKey, err = server.SessionKey(ctx, store); err != nil {
			t.Fatal(err)
		}
	}
	proxies, err := server.ParsePrefixes(o.trustedProxies)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Config{
		Version: "test", Store: store, Hub: hub, Activity: acts, Settings: sets, Downloads: dl, ModelsDir: o.modelsDir, System: mon, Logger: log,
		Password: o.password, SessionKey: o.sessionKey, UI: ui.Handler(ui.Limits{MinRetentionDays: 1, MaxRetentionDays: 3650}),
		Hostname: o.hostname, AllowedHosts: o.allowedHosts, TrustedProxies: proxies, Mode: o.mode,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bg, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); srv.Serve(ln) }()
	go func() { defer wg.Done(); dl.Run(bg) }()
	go func() { defer wg.Done(); mon.Run(bg) }()
	e := &env{URL: "http://" + ln.Addr().String(), PresetsFile: presets, Store: store, Hub: hub, Logs: logs, srv: srv, ln: ln}
	var once sync.Once
	e.stop = func() {
		once.Do(func() {
			ln.Close()
			hub.Close(context.Background())
			sctx, c := context.WithTimeout(ctx, 5*time.Second)
			defer c()
			srv.Shutdown(sctx)
			cancel()
			wg.Wait()
			store.Close()
		})
	}
	t.Cleanup(e.stop)
	return e
}

// call sends a request and decodes the JSON answer into out (when not nil).
func (e *env) call(t *testing.T, method, path, body string, out any) (int, string) {
	t.Helper()
	return e.callWith(t, method, path, body, nil, out)
}

func (e *env) callWith(t *testing.T, method, path, body string, hdr map[string]string, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: answer is not JSON: %s", method, path, raw)
		}
	}
	return resp.StatusCode, string(raw)
}

// oversize announces a body over the limit and sends only the headers: the
// server answers from Content-Length alone, and a client still writing the
// body when it does would see the connection reset instead of the answer.
func (e *env) oversize(t *testing.T) *http.Response {
	t.Helper()
	return e.oversizeAt(t, "/api/activity", server.BodyLimit+1)
}

// oversizeAt sends only the headers of a request whose body would be n
// bytes, and expects 413 without the body being read.
func (e *env) oversizeAt(t *testing.T, path string, n int) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		path, strings.TrimPrefix(e.URL, "http://"), n)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversize body: %d, want 413", resp.StatusCode)
	}
	return resp
}

// frame is one WebSocket message.
type frame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

type wsClient struct {
	conn   *websocket.Conn
	frames chan frame
	raw    chan string
	closed chan error
}

func (e *env) dial(t *testing.T, hdr http.Header) *wsClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(strings.Replace(e.URL, "http", "ws", 1)+"/ws", hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial ws: %v (HTTP %d)", err, status)
	}
	c := &wsClient{conn: conn, frames: make(chan frame, 1000), raw: make(chan string, 1000), closed: make(chan error, 1)}
	go func() {
		for {
			_, msg, err := conn.ReadMessage()
			if err != nil {
				c.closed <- err
				return
			}
			var f frame
			if err := json.Unmarshal(msg, &f); err != nil {
				c.closed <- err
				return
			}
			c.raw <- string(msg)
			c.frames <- f
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return c
}

// next waits for the next frame of type typ, skipping others.
func (c *wsClient) next(t *testing.T, typ string, within time.Duration) frame {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case f := <-c.frames:
			if f.Type == typ {
				return f
			}
		case err := <-c.closed:
			t.Fatalf("connection closed while waiting for %q: %v", typ, err)
		case <-deadline:
			t.Fatalf("no %q frame within %v", typ, within)
		}
	}
}

func TestHealth(t *testing.T) {
	e := start(t, options{})
	var h map[string]string
	status, _ := e.call(t, "GET", "/api/health", "", &h)
	if status != 200 || h["status"] != "ok" || h["db"] != "ok" || h["version"] != "test" {
		t.Fatalf("health = %d %v", status, h)
	}
}

func TestErrorEnvelope(t *testing.T) {
	e := start(t, options{})
	ctx := context.Background()
	before, err := e.Store.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"unknown route", "GET", "/api/nope", "", 404, "not_found"},
		{"malformed json", "PATCH", "/api/settings", `{"theme":`, 400, "invalid_json"},
		{"not an object", "PATCH", "/api/settings", `[1,2]`, 400, "invalid_json"},
		{"empty body", "PATCH", "/api/settings", ``, 400, "invalid_json"},
		{"wrong type theme", "PATCH", "/api/settings", `{"theme":1}`, 400, "invalid_setting"},
		{"wrong type retention", "PATCH", "/api/settings", `{"activity_retention_days":"7"}`, 400, "invalid_setting"},
		{"null retention", "PATCH", "/api/settings", `{"activity_retention_days":null}`, 400, "invalid_setting"},
		{"bad theme", "PATCH", "/api/settings", `{"theme":"pink"}`, 400, "invalid_setting"},
		{"retention out of range", "PATCH", "/api/settings", `{"activity_retention_days":0}`, 400, "invalid_setting"},
		{"unknown key", "PATCH", "/api/settings", `{"theme":"light","colour":"red"}`, 400, "invalid_setting"},
		{"token via patch", "PATCH", "/api/settings", `{"hf_token":"hf_x"}`, 400, "invalid_setting"},
		{"trailing data", "PATCH", "/api/settings", `{"theme":"light"} {}`, 400, "invalid_json"},
		{"activity bad type", "POST", "/api/activity", `{"type":"party","status":"started","title":"x"}`, 400, "invalid_activity"},
		{"activity bad status", "POST", "/api/activity", `{"type":"download","status":"done","title":"x"}`, 400, "invalid_activity"},
		{"activity unknown field", "POST", "/api/activity", `{"type":"download","status":"started","title":"x","id":5}`, 400, "unknown_field"},
		{"activity details not object", "POST", "/api/activity", `{"type":"download","status":"started","title":"x","details":[1]}`, 400, "invalid_activity"},
		{"activity filter", "GET", "/api/activity?type=party", "", 400, "invalid_query"},
		{"activity status filter", "GET", "/api/activity?status=done", "", 400, "invalid_query"},
		{"activity limit", "GET", "/api/activity?limit=0", "", 400, "invalid_query"},
		{"history before", "GET", "/api/downloads/history?before=abc", "", 400, "invalid_query"},
		{"unknown preset", "GET", "/api/presets/NOPE", "", 404, "not_found"},
		{"install unknown preset", "POST", "/api/presets/NOPE/install", "", 404, "not_found"},
		{"cancel unknown download", "POST", "/api/downloads/999/cancel", "", 404, "not_found"},
		{"ws without upgrade", "GET", "/ws", "", 426, "upgrade_required"},
		{"wrong method", "GET", "/api/activity/clear", "", 405, "method_not_allowed"},
		{"wrong method on settings", "PUT", "/api/settings", `{"theme":"light"}`, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var env struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			status, raw := e.call(t, tc.method, tc.path, tc.body, &env)
			if status != tc.status || env.Error.Code != tc.code || env.Error.Message == "" {
				t.Fatalf("got %d %s, want %d %s", status, raw, tc.status, tc.code)
			}
		})
	}
	resp := e.oversize(t)
	var big struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&big); err != nil || big.Error.Code != "body_too_large" || big.Error.Message == "" {
		t.Fatalf("oversize body: %d %+v %v", resp.StatusCode, big, err)
	}
	// Nothing was written by any of them: the rows as stored, not the
	// API's view of them, which puts defaults over bad values.
	after, err := e.Store.Settings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("settings changed by bad requests:\nbefore %v\nafter  %v", before, after)
	}
	rows, err := e.Store.ListActivity(ctx, model.ActivityFilter{})
	if err != nil || len(rows) != 0 {
		t.Fatalf("activity written by bad requests: %+v (%v)", rows, err)
	}
}

func TestSnapshotFirstThenSettingsReachOtherClients(t *testing.T) {
	e := start(t, options{})
	a := e.dial(t, nil)
	b := e.dial(t, nil)
	for _, c := range []*wsClient{a, b} {
		select {
		case f := <-c.frames:
			if f.Type != "snapshot" {
				t.Fatalf("first frame is %q, want snapshot", f.Type)
			}
			var snap struct {
				Downloads []json.RawMessage `json:"downloads"`
				Activity  []model.Activity  `json:"activity"`
				Settings  settings.View     `json:"settings"`
			}
			if err := json.Unmarshal(f.Data, &snap); err != nil || snap.Settings.Theme != "dark" || snap.Downloads == nil || snap.Activity == nil {
				t.Fatalf("bad snapshot %s (%v)", f.Data, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("no snapshot")
		}
	}
	status, raw := e.call(t, "PATCH", "/api/settings", `{"theme":"light","activity_retention_days":7}`, nil)
	if status != 200 {
		t.Fatalf("patch: %d %s", status, raw)
	}
	for _, c := range []*wsClient{a, b} {
		f := c.next(t, "settings", time.Second)
		var v settings.View
		json.Unmarshal(f.Data, &v)
		if v.Theme != "light" || v.ActivityRetentionDays != 7 {
			t.Fatalf("settings frame %s", f.Data)
		}
	}
	// Saved, not just announced.
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if v.Theme != "light" || v.ActivityRetentionDays != 7 {
		t.Fatalf("GET after PATCH: %+v", v)
	}
}

func TestActivityPostListClear(t *testing.T) {
	e := start(t, options{})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)

	var ids []int64
	for i, body := range []string{
		`{"type":"download","status":"completed","title":"Model A","subtitle":"A","details":{"files":2}}`,
		`{"type":"generation","status":"started","title":"Workflow x.json"}`,
		`{"type":"generation","status":"completed","title":"4 images generated","details":null}`,
	} {
		var a model.Activity
		status, raw := e.call(t, "POST", "/api/activity", body, &a)
		if status != 201 || a.ID == 0 || a.CreatedAt.IsZero() {
			t.Fatalf("post %d: %d %s", i, status, raw)
		}
		f := c.next(t, "activity", time.Second)
		var got model.Activity
		json.Unmarshal(f.Data, &got)
		if got.ID != a.ID || got.Title != a.Title {
			t.Fatalf("frame %s does not match %+v", f.Data, a)
		}
		ids = append(ids, a.ID)
	}

	var page struct {
		Activity   []model.Activity `json:"activity"`
		NextBefore *int64           `json:"next_before"`
	}
	e.call(t, "GET", "/api/activity?type=generation&limit=1", "", &page)
	if len(page.Activity) != 1 || page.Activity[0].ID != ids[2] || page.NextBefore == nil {
		t.Fatalf("first page %+v", page)
	}
	e.call(t, "GET", "/api/activity?type=generation&limit=1&before="+itoa(*page.NextBefore), "", &page)
	if len(page.Activity) != 1 || page.Activity[0].ID != ids[1] {
		t.Fatalf("second page %+v", page)
	}
	e.call(t, "GET", "/api/activity?status=completed", "", &page)
	if len(page.Activity) != 2 || page.NextBefore != nil {
		t.Fatalf("status filter %+v", page)
	}
	if string(page.Activity[1].Details) != `{"files":2}` {
		t.Fatalf("details = %s", page.Activity[1].Details)
	}

	var cleared struct{ Deleted int64 }
	e.call(t, "POST", "/api/activity/clear", "", &cleared)
	if cleared.Deleted != 3 {
		t.Fatalf("deleted %d", cleared.Deleted)
	}
	f := c.next(t, "activity_cleared", time.Second)
	if !strings.Contains(string(f.Data), `"deleted":3`) {
		t.Fatalf("activity_cleared frame %s", f.Data)
	}
	e.call(t, "GET", "/api/activity", "", &page)
	if len(page.Activity) != 0 {
		t.Fatalf("after clear %+v", page)
	}
}

func TestForeignOriginRefused(t *testing.T) {
	e := start(t, options{})
	_, resp, err := websocket.DefaultDialer.Dial(strings.Replace(e.URL, "http", "ws", 1)+"/ws", http.Header{"Origin": {"https://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("foreign origin: err=%v resp=%v", err, resp)
	}
	// The dashboard's own origin and no origin are both fine.
	e.dial(t, http.Header{"Origin": {e.URL}}).next(t, "snapshot", 2*time.Second)
	e.dial(t, nil).next(t, "snapshot", 2*time.Second)
}

func TestShutdownSends1001(t *testing.T) {
	e := start(t, options{})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	go e.stop()
	select {
	case err := <-c.closed:
		if !websocket.IsCloseError(err, websocket.CloseGoingAway) {
			t.Fatalf("closed with %v, want 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client not closed on shutdown")
	}
}

// dialWS opens the WebSocket with hdr ("Host" sets the Host header) and
// gives back the handshake's answer.
func dialWS(e *env, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	conn, resp, err := websocket.DefaultDialer.Dial(strings.Replace(e.URL, "http", "ws", 1)+"/ws", hdr)
	if conn != nil {
		conn.Close()
	}
	return conn, resp, err
}

// decodeBody reads a JSON answer into out and closes it.
func decodeBody(t *testing.T, resp *http.Response, out any) {
	t.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("answer is not JSON: %d %s", resp.StatusCode, raw)
	}
}

// noRedirectGet fetches a page without following redirects.
func noRedirectGet(u string, hdr map[string]string) (int, error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := noRedirect().Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
