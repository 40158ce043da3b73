package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"dashboard/model"
	"dashboard/realtime"
)

// A page on another site whose name was made to point at the pod (DNS
// rebinding) sends its own name as Host and Origin; with no password that
// used to be enough to clear the activity log.
func TestDNSRebindingRefused(t *testing.T) {
	e := start(t, options{})
	if status, raw := e.call(t, "POST", "/api/activity", `{"type":"error","status":"failed","title":"keep me"}`, nil); status != 201 {
		t.Fatalf("seed activity: %d %s", status, raw)
	}
	req, _ := http.NewRequest("POST", e.URL+"/api/activity/clear", nil)
	req.Host = "evil.example"
	req.Header.Set("Origin", "http://evil.example")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host answered %d, want 421", resp.StatusCode)
	}
	var list struct{ Activity []model.Activity }
	e.call(t, "GET", "/api/activity", "", &list)
	if len(list.Activity) != 1 {
		t.Fatalf("activity was cleared through a foreign Host: %+v", list.Activity)
	}
}

func TestOnlyListedHostsAreAnswered(t *testing.T) {
	e := start(t, options{hostname: "gpu-box.internal", allowedHosts: []string{"dash.example.com", "*.corp.example"}, trustedProxies: "10.0.0.0/8"})
	cases := []struct {
		host string
		xfh  string // X-Forwarded-Host, ignored: the test client is no trusted proxy
		want int
	}{
		{"localhost", "", 200},
		{"LOCALHOST:8082", "", 200},
		{"127.0.0.1:8082", "", 200},
		{"[::1]:8082", "", 200},
		{"10.1.2.3", "", 200},
		{"mypod", "", 200},
		{"mypod:8082", "", 200},
		{"gpu-box.internal", "", 200},
		{"gpu-box.internal.", "", 200},
		{"abc123-8082.proxy.runpod.net", "", 200},
		{"dash.example.com:443", "", 200},
		{"a.b.corp.example", "", 200},
		{"localhost", "evil.example", 200},

		{"evil.example", "", 421},
		{"localhost.evil.example", "", 421},
		{"proxy.runpod.net", "", 421},
		{"proxy.runpod.net.evil.example", "", 421},
		{"xproxy.runpod.net", "", 421},
		{"corp.example", "", 421},
		{"example.com", "", 421},
		{"evil.example", "localhost", 421},
	}
	for _, tc := range cases {
		t.Run(tc.host+"/"+tc.xfh, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.URL+"/api/settings", nil)
			req.Host = tc.host
			if tc.xfh != "" {
				req.Header.Set("X-Forwarded-Host", tc.xfh)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var env struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			decodeBody(t, resp, &env)
			if resp.StatusCode != tc.want {
				t.Fatalf("Host %q: %d %+v, want %d", tc.host, resp.StatusCode, env, tc.want)
			}
			if tc.want == 421 && (env.Error.Code != "unknown_host" || !strings.Contains(env.Error.Message, "DASHBOARD_ALLOWED_HOSTS")) {
				t.Fatalf("421 without the way out: %+v", env)
			}
		})
	}
	// The WebSocket and pages are guarded the same way.
	hdr := http.Header{"Host": {"evil.example"}}
	if _, resp, err := dialWS(e, hdr); err == nil || resp == nil || resp.StatusCode != 421 {
		t.Fatalf("ws with a foreign Host: %v %v", err, resp)
	}
}

// Behind a trusted proxy, the name the browser used is in X-Forwarded-Host.
func TestForwardedHostFromTrustedProxy(t *testing.T) {
	e := start(t, options{trustedProxies: "127.0.0.0/8, ::1"})
	for _, tc := range []struct {
		xfh  string
		want int
	}{{"abc-8082.proxy.runpod.net", 200}, {"evil.example", 421}, {"", 200}} {
		status, raw := e.callWith(t, "GET", "/api/settings", "", map[string]string{"X-Forwarded-Host": tc.xfh}, nil)
		if status != tc.want {
			t.Errorf("X-Forwarded-Host %q from a trusted proxy: %d %s, want %d", tc.xfh, status, raw, tc.want)
		}
	}
}

// A rebinding page can set X-Forwarded-Host itself (no preflight needed),
// and a local proxy or a port forward puts it behind a trusted address: the
// header names an allowed host, the Host header the attacker's. Both must
// be allowed, or the page clears the activity log.
func TestForwardedHostNeverStandsInForHost(t *testing.T) {
	e := start(t, options{trustedProxies: "127.0.0.1, ::1"})
	if status, raw := e.call(t, "POST", "/api/activity", `{"type":"error","status":"failed","title":"keep me"}`, nil); status != 201 {
		t.Fatalf("seed activity: %d %s", status, raw)
	}
	for _, xfh := range [][]string{{"localhost"}, {"localhost, evil.example"}, {"localhost", "evil.example"}, {"evil.example", "localhost"}} {
		req, _ := http.NewRequest("POST", e.URL+"/api/activity/clear", nil)
		req.Host = "evil.example"
		req.Header.Set("Origin", "http://evil.example")
		req.Header["X-Forwarded-Host"] = xfh
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("Host evil.example with X-Forwarded-Host %q from a trusted peer: %d, want 421", xfh, resp.StatusCode)
		}
	}
	// A good Host with a foreign name on any forwarded line is refused too.
	req, _ := http.NewRequest("GET", e.URL+"/api/settings", nil)
	req.Header["X-Forwarded-Host"] = []string{"localhost", "evil.example"}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a foreign name on a second X-Forwarded-Host line: %d, want 421", resp.StatusCode)
	}
	var list struct{ Activity []model.Activity }
	e.call(t, "GET", "/api/activity", "", &list)
	if len(list.Activity) != 1 {
		t.Fatalf("activity was cleared through a forwarded name: %+v", list.Activity)
	}
}

// 30 wrong passwords, each claiming another X-Forwarded-For, from a peer that
// is not a trusted proxy: the header is ignored, so the peer is locked out.
func TestForgedForwardedForDoesNotDodgeLockout(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	locked := 0
	for i := 0; i < 30; i++ {
		resp, _ := login(t, e, "wrong", map[string]string{"X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i)})
		if resp.StatusCode == http.StatusTooManyRequests {
			locked++
		}
	}
	if locked != 25 {
		t.Fatalf("%d of 30 spoofed guesses were refused with 429, want 25 (all after the 5th)", locked)
	}
}

// A signed-in browser keeps working while a stranger behind the same address
// (the pod's proxy, say) is locked out for guessing.
func TestLockoutNeverEndsASignedInSession(t *testing.T) {
	e := start(t, options{password: password, sessionKey: key})
	resp, cookie := login(t, e, password, nil)
	if resp.StatusCode != 200 || cookie == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	for i := 0; i < 6; i++ {
		login(t, e, "wrong", nil)
	}
	if resp, _ := login(t, e, password, nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the address is not locked out: %d", resp.StatusCode)
	}
	withCookie := map[string]string{"Cookie": "dashboard_session=" + cookie}
	if status, raw := e.callWith(t, "GET", "/api/settings", "", withCookie, nil); status != 200 {
		t.Fatalf("signed-in API call during a lockout: %d %s", status, raw)
	}
	if status, raw := e.callWith(t, "PATCH", "/api/settings", `{"theme":"light"}`, withCookie, nil); status != 200 {
		t.Fatalf("signed-in change during a lockout: %d %s", status, raw)
	}
	// Even with a stale bearer beside the cookie: the cookie decides.
	withBoth := map[string]string{"Cookie": "dashboard_session=" + cookie, "Authorization": "Bearer stale"}
	if status, raw := e.callWith(t, "GET", "/api/settings", "", withBoth, nil); status != 200 {
		t.Fatalf("cookie plus a wrong bearer during a lockout: %d %s", status, raw)
	}
	e.dial(t, http.Header{"Cookie": {"dashboard_session=" + cookie}}).next(t, "snapshot", 2*time.Second)
	page, err := noRedirectGet(e.URL+"/settings", withCookie)
	if err != nil || page != 200 {
		t.Fatalf("signed-in page during a lockout: %d %v", page, err)
	}
}

// Paths are matched case-sensitively, and the password check looks at the
// path the router matches: /API/… is no API path that skips the login as a
// static ".js" file.
func TestUpperCasePathsDoNotSkipLogin(t *testing.T) {
	presets := `presets:
  X.js:
    name: X
    files:
    - path: checkpoints/x.safetensors
      url: https://huggingface.co/org/public/resolve/main/x.safetensors
`
	e := start(t, options{password: password, sessionKey: key, presets: presets})
	for _, p := range []string{"/API/presets/X.js", "/Api/presets/X.js", "/api/PRESETS/X.js", "/API/PRESETS", "/WS", "/api/presets/X.js/"} {
		// Not following redirects: a redirect to the login page is a refusal.
		status, err := noRedirectGet(e.URL+p, nil)
		if err != nil || status == 200 {
			t.Errorf("%s without a password: %d %v", p, status, err)
		}
	}
	bearer := map[string]string{"Authorization": "Bearer " + password}
	if status, raw := e.callWith(t, "GET", "/api/presets/X.js", "", bearer, nil); status != 200 {
		t.Fatalf("the lower-case path with the password: %d %s", status, raw)
	}
	if status, _ := e.callWith(t, "GET", "/API/presets/X.js", "", bearer, nil); status != 404 {
		t.Fatalf("/API/… is not /api/…: %d", status)
	}
	// Pages still answer with a trailing slash.
	for _, p := range []string{"/activity/", "/settings/"} {
		if status, err := noRedirectGet(e.URL+p, bearer); err != nil || status != 200 {
			t.Errorf("%s: %d %v", p, status, err)
		}
	}
}

// An address with its share of WebSocket connections gets 503 before the
// upgrade; another address still connects.
func TestWebSocketLimitPerAddress(t *testing.T) {
	e := start(t, options{trustedProxies: "127.0.0.1", hub: realtime.Options{MaxClientsPerAddress: 2}})
	from := func(a string) http.Header { return http.Header{"X-Forwarded-For": {a}} }
	e.dial(t, from("203.0.113.1")).next(t, "snapshot", 2*time.Second)
	e.dial(t, from("203.0.113.1")).next(t, "snapshot", 2*time.Second)
	_, resp, err := dialWS(e, from("203.0.113.1"))
	if err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("a third connection from one address: %v %v", err, resp)
	}
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	decodeBody(t, resp, &env)
	if env.Error.Code != "too_many_clients" || !strings.Contains(env.Error.Message, "2 live connections") {
		t.Fatalf("refusal: %+v", env)
	}
	e.dial(t, from("203.0.113.2")).next(t, "snapshot", 2*time.Second)
}
