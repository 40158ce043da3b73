package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

const password = "correct horse battery staple"

var key = []byte("0123456789abcdef0123456789abcdef")

func noRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func login(t *testing.T, e *env, pw string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.URL+"/api/login", strings.NewReader(`{"password":"`+pw+`"}`))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "dashboard_session" {
			return resp, c.Value
		}
	}
	return resp, ""
}

func TestPasswordProtectsPagesAPIAndWebSocket(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	bearer := map[string]string{"Authorization": "Bearer " + password}

	if status, _ := e.call(t, "GET", "/api/health", "", nil); status != 200 {
		t.Fatalf("health needs no password, got %d", status)
	}
	var env struct {
		Error struct{ Code string } `json:"error"`
	}
	if status, _ := e.call(t, "GET", "/api/settings", "", &env); status != 401 || env.Error.Code != "unauthorized" {
		t.Fatalf("no credentials: %d %+v", status, env)
	}
	if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Authorization": "Bearer nope"}, nil); status != 401 {
		t.Fatalf("wrong bearer: %d", status)
	}
	if status, _ := e.callWith(t, "GET", "/api/settings", "", bearer, nil); status != 200 {
		t.Fatalf("right bearer: %d", status)
	}

	// Pages send a browser to the login page.
	resp, err := noRedirect().Get(e.URL + "/settings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fsettings" {
		t.Fatalf("page without login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// The WebSocket: refused without credentials, fine with a bearer.
	wsURL := strings.Replace(e.URL, "http", "ws", 1) + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(wsURL, nil); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("ws without credentials: %v %v", err, resp)
	}
	e.dial(t, http.Header{"Authorization": {"Bearer " + password}}).next(t, "snapshot", 2*time.Second)

	// Log in: a cookie that works for the API and the WebSocket.
	if resp, cookie := login(t, e, "wrong", nil); resp.StatusCode != 401 || cookie != "" {
		t.Fatalf("wrong password login: %d %q", resp.StatusCode, cookie)
	}
	resp, cookie := login(t, e, password, nil)
	if resp.StatusCode != 200 || cookie == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	sc := resp.Header.Get("Set-Cookie")
	if !strings.Contains(sc, "HttpOnly") || !strings.Contains(strings.ToLower(sc), "samesite=strict") || strings.Contains(strings.ToLower(sc), "secure") {
		t.Fatalf("cookie attributes over http: %s", sc)
	}
	withCookie := map[string]string{"Cookie": "dashboard_session=" + cookie}
	if status, _ := e.callWith(t, "GET", "/api/settings", "", withCookie, nil); status != 200 {
		t.Fatalf("cookie refused: %d", status)
	}
	e.dial(t, http.Header{"Cookie": {"dashboard_session=" + cookie}}).next(t, "snapshot", 2*time.Second)
	if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Cookie": "dashboard_session=" + cookie[:len(cookie)-2] + "xx"}, nil); status != 401 {
		t.Fatalf("tampered cookie accepted: %d", status)
	}

	// Behind the pod's HTTPS proxy the cookie is Secure.
	resp, _ = login(t, e, password, map[string]string{"X-Forwarded-Proto": "https"})
	if !strings.Contains(strings.ToLower(resp.Header.Get("Set-Cookie")), "; secure") {
		t.Fatalf("cookie over https not Secure: %s", resp.Header.Get("Set-Cookie"))
	}

	// Logout clears it.
	req, _ := http.NewRequest("POST", e.URL+"/api/logout", nil)
	req.Header.Set("Cookie", "dashboard_session="+cookie)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if sc := resp.Header.Get("Set-Cookie"); !strings.Contains(sc, "dashboard_session=;") && !strings.Contains(sc, "Max-Age=0") && !strings.Contains(sc, "expires=Thu, 01 Jan 1970") {
		t.Fatalf("logout did not clear the cookie: %s", sc)
	}
}

func TestSessionSurvivesRestartButNotPasswordChange(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	_, cookie := login(t, e, password, nil)
	e.stop()

	again := start(t, options{password: password, sessionKey: key})
	if status, _ := again.callWith(t, "GET", "/api/settings", "", map[string]string{"Cookie": "dashboard_session=" + cookie}, nil); status != 200 {
		t.Fatalf("session lost across restart: %d", status)
	}
	changed := start(t, options{password: "another password", sessionKey: key})
	if status, _ := changed.callWith(t, "GET", "/api/settings", "", map[string]string{"Cookie": "dashboard_session=" + cookie}, nil); status != 401 {
		t.Fatalf("session kept after the password changed: %d", status)
	}
}

// The signing key lives in the database: a restart keeps sessions, and a
// logout (a new key) ends them for good, restarts included.
func TestSessionKeyKeptInTheDatabase(t *testing.T) {
	dir := t.TempDir()
	e := start(t, options{password: password, dir: dir})
	_, cookie := login(t, e, password, nil)
	withCookie := map[string]string{"Cookie": "dashboard_session=" + cookie}
	e.stop()

	again := start(t, options{password: password, dir: dir})
	if status, _ := again.callWith(t, "GET", "/api/settings", "", withCookie, nil); status != 200 {
		t.Fatalf("session lost across restart: %d", status)
	}
	if status, _ := again.callWith(t, "POST", "/api/logout", "", withCookie, nil); status != 200 {
		t.Fatalf("logout: %d", status)
	}
	again.stop()

	third := start(t, options{password: password, dir: dir})
	if status, _ := third.callWith(t, "GET", "/api/settings", "", withCookie, nil); status != 401 {
		t.Fatalf("a cookie from before the logout works after a restart: %d", status)
	}
}

func TestWrongPasswordsAreRateLimited(t *testing.T) {
	logs := &syncBuffer{}
	e := start(t, options{password: password, sessionKey: key, logs: logs})
	for i := 0; i < 5; i++ {
		if resp, _ := login(t, e, "guess-"+string(rune('a'+i)), nil); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	resp, cookie := login(t, e, password, nil)
	if resp.StatusCode != 429 || cookie != "" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("after 5 wrong passwords, even the right one must wait: %d %q", resp.StatusCode, cookie)
	}
	if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Authorization": "Bearer guess"}, nil); status != 429 {
		t.Fatalf("bearer during lockout: %d", status)
	}
	// The right password gets no different answer during a lockout, or the
	// lockout would tell a guesser when a guess was right.
	if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Authorization": "Bearer " + password}, nil); status != 429 {
		t.Fatalf("right bearer during lockout: %d", status)
	}
	if !strings.Contains(logs.String(), "locked out") {
		t.Fatalf("no log line for the lockout:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "guess-") {
		t.Fatal("a tried password reached the log")
	}
}

func TestCrossSiteRequestsRefused(t *testing.T) {
	e := start(t, options{})
	act := `{"type":"error","status":"failed","title":"x"}`
	cases := []struct {
		name   string
		hdr    map[string]string
		ctype  string
		status int
	}{
		{"foreign origin", map[string]string{"Origin": "https://evil.example"}, "application/json", 403},
		{"null origin", map[string]string{"Origin": "null"}, "application/json", 403},
		{"sec-fetch-site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site"}, "application/json", 403},
		{"form post", nil, "application/x-www-form-urlencoded", 415},
		{"text/plain", nil, "text/plain", 415},
		{"own origin", map[string]string{"Origin": e.URL, "Sec-Fetch-Site": "same-origin"}, "application/json", 201},
		{"script without origin", nil, "application/json; charset=utf-8", 201},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.URL+"/api/activity", strings.NewReader(act))
			req.Header.Set("Content-Type", tc.ctype)
			for k, v := range tc.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
	if status, _ := e.callWith(t, "POST", "/api/activity/clear", "", map[string]string{"Origin": "https://evil.example"}, nil); status != 403 {
		t.Fatalf("cross-site clear without body: %d", status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := start(t, options{})
	for _, p := range []string{"/api/settings", "/api/nope", "oversize"} {
		var resp *http.Response
		if p == "oversize" {
			resp = e.oversize(t)
		} else {
			var err error
			if resp, err = http.Get(e.URL + p); err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", p, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code", p)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", p, resp.Header)
		}
	}
}

func TestBearerGuessesAreRateLimited(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	for i := 0; i < 5; i++ {
		if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Authorization": "Bearer wrong"}, nil); status != 401 {
			t.Fatalf("guess %d: %d", i, status)
		}
	}
	if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Authorization": "Bearer " + password}, nil); status != 429 {
		t.Fatalf("right bearer after 5 wrong ones: %d", status)
	}
}

// Behind the pod's proxy every request comes from one address: when that
// proxy is trusted, the client it names is locked out, not everyone.
func TestLockoutIsPerClientBehindTheProxy(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key, trustedProxies: "127.0.0.1, ::1"})
	for i := 0; i < 5; i++ {
		// A client cannot choose its key by adding entries in front.
		xff := "10.9.9." + itoa(int64(i)) + ", 203.0.113.7"
		if resp, _ := login(t, e, "wrong", map[string]string{"X-Forwarded-For": xff}); resp.StatusCode != 401 {
			t.Fatalf("attempt %d: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := login(t, e, password, map[string]string{"X-Forwarded-For": "203.0.113.7"}); resp.StatusCode != 429 {
		t.Fatalf("the guessing client is not locked out: %d", resp.StatusCode)
	}
	if resp, cookie := login(t, e, password, map[string]string{"X-Forwarded-For": "198.51.100.4"}); resp.StatusCode != 200 || cookie == "" {
		t.Fatalf("the owner, from another address, is locked out too: %d", resp.StatusCode)
	}
}

// A proxy that adds its own X-Forwarded-For line after the client's (as
// HAProxy does) must not let the client's line pick the lockout key.
func TestLockoutReadsEveryForwardedForLine(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key, trustedProxies: "127.0.0.1, ::1"})
	locked := 0
	for i := 0; i < 30; i++ {
		req, _ := http.NewRequest("POST", e.URL+"/api/login", strings.NewReader(`{"password":"wrong"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header["X-Forwarded-For"] = []string{"198.51.100." + itoa(int64(i)), "203.0.113.7"}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			locked++
		}
	}
	if locked != 25 {
		t.Fatalf("%d of 30 guesses were refused with 429, want 25: the client's own line chose its key", locked)
	}
}

func TestLogoutEndsTheSessionEverywhere(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	_, cookie := login(t, e, password, nil)
	_, other := login(t, e, password, nil)
	hdr := map[string]string{"Cookie": "dashboard_session=" + cookie}
	if status, _ := e.callWith(t, "POST", "/api/logout", "", hdr, nil); status != 200 {
		t.Fatalf("logout: %d", status)
	}
	for _, c := range []string{cookie, other} {
		if status, _ := e.callWith(t, "GET", "/api/settings", "", map[string]string{"Cookie": "dashboard_session=" + c}, nil); status != 401 {
			t.Fatalf("a copied cookie still works after logout: %d", status)
		}
	}
	if _, fresh := login(t, e, password, nil); fresh == "" {
		t.Fatal("cannot log in again after logout")
	}
}

func TestAPIPathsNeverPassAsStaticFiles(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	for _, p := range []string{"/api/presets/X.js", "/api/settings.css", "/api/downloads/history.png"} {
		if status, raw := e.call(t, "GET", p, "", nil); status != 401 {
			t.Errorf("%s without a password: %d %s", p, status, raw)
		}
	}
}
