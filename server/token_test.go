package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"dashboard/settings"
)

func TestTokenSaveValidatesFirst(t *testing.T) {
	e := start(t, options{})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)

	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	status, _ := e.call(t, "POST", "/api/settings/hf-token", `{"token":"hf_wrongTokenXXXXXXXXXXXXXXX"}`, &env)
	if status != 400 || env.Error.Code != "invalid_token" {
		t.Fatalf("wrong token: %d %+v", status, env)
	}
	status, _ = e.call(t, "POST", "/api/settings/hf-token", `{"token":"  "}`, &env)
	if status != 400 || env.Error.Code != "invalid_token" {
		t.Fatalf("empty token: %d %+v", status, env)
	}
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if v.HFToken.Set {
		t.Fatalf("an invalid token was saved: %+v", v.HFToken)
	}

	status, raw := e.call(t, "POST", "/api/settings/hf-token", `{"token":"`+goodToken+`"}`, &v)
	if status != 200 || !v.HFToken.Set || *v.HFToken.Source != "db" || *v.HFToken.Masked != "hf_…WXYZ" || *v.HFToken.Username != "alice" {
		t.Fatalf("save: %d %s", status, raw)
	}
	f := c.next(t, "settings", time.Second)
	if !strings.Contains(string(f.Data), `"masked":"hf_…WXYZ"`) {
		t.Fatalf("settings frame %s", f.Data)
	}

	// Each answer is decoded into a fresh value: a stale one would pass.
	var check settings.TokenCheck
	if status, raw := e.call(t, "POST", "/api/settings/hf-token/test", "", &check); status != 200 || !check.Valid || check.Username != "alice" || check.Role != "read" {
		t.Fatalf("test current: %d %s", status, raw)
	}
	check = settings.TokenCheck{}
	if status, raw := e.call(t, "POST", "/api/settings/hf-token/test", `{"token":"hf_otherTokenYYYYYYYYYYYYY"}`, &check); status != 200 || check.Valid || check.Message == "" {
		t.Fatalf("test typed wrong token: %d %s", status, raw)
	}

	v = settings.View{HFToken: settings.TokenView{Set: true}}
	if status, raw := e.call(t, "DELETE", "/api/settings/hf-token", "", &v); status != 200 || v.HFToken.Set || v.Theme == "" {
		t.Fatalf("after delete: %d %s", status, raw)
	}
	c.next(t, "settings", time.Second)
	check = settings.TokenCheck{Valid: true}
	if status, raw := e.call(t, "POST", "/api/settings/hf-token/test", "", &check); status != 200 || check.Valid || !strings.Contains(check.Message, "No HuggingFace token is set") {
		t.Fatalf("no token but test says: %d %s", status, raw)
	}
}

func TestTokenEnvFallback(t *testing.T) {
	e := start(t, options{envToken: goodToken})
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if !v.HFToken.Set || *v.HFToken.Source != "env" || *v.HFToken.Masked != "hf_…WXYZ" {
		t.Fatalf("env token: %+v", v.HFToken)
	}
	var check settings.TokenCheck
	e.call(t, "POST", "/api/settings/hf-token/test", "", &check)
	if !check.Valid || check.Username != "alice" {
		t.Fatalf("test env token: %+v", check)
	}
	e.call(t, "GET", "/api/settings", "", &v)
	if v.HFToken.Username == nil || *v.HFToken.Username != "alice" {
		t.Fatalf("env token username not shown after a test: %+v", v.HFToken)
	}
}

func TestTokenHuggingFaceUnreachable(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	for name, endpoint := range map[string]string{"503": down.URL, "refused": "http://127.0.0.1:1", "mirror with credentials": "http://mirroruser:mirrorpass@127.0.0.1:1"} {
		t.Run(name, func(t *testing.T) {
			e := start(t, options{hfEndpoint: endpoint})
			var env struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			status, raw := e.call(t, "POST", "/api/settings/hf-token", `{"token":"`+goodToken+`"}`, &env)
			if status != 502 || env.Error.Code != "hf_unreachable" {
				t.Fatalf("save: %d %+v", status, env)
			}
			if strings.Contains(raw, "mirrorpass") || strings.Contains(e.Logs.String(), "mirrorpass") {
				t.Fatalf("the endpoint's password leaked: %s", raw)
			}
			status, _ = e.call(t, "POST", "/api/settings/hf-token/test", `{"token":"`+goodToken+`"}`, &env)
			if status != 502 || env.Error.Code != "hf_unreachable" {
				t.Fatalf("test: %d %+v", status, env)
			}
			v := settings.View{HFToken: settings.TokenView{Set: true}}
			if status, raw := e.call(t, "GET", "/api/settings", "", &v); status != 200 || v.HFToken.Set {
				t.Fatalf("token saved although HuggingFace could not check it: %d %s", status, raw)
			}
		})
	}
}

// TestSecretsNeverLeak runs a whole settings and login flow and looks for the
// HuggingFace token and the dashboard password in every response, every
// frame and every log line.
func TestSecretsNeverLeak(t *testing.T) {
	logs := &syncBuffer{}
	e := start(t, options{password: password, sessionKey: key, logs: logs})
	auth := map[string]string{"Authorization": "Bearer " + password}
	c := e.dial(t, http.Header{"Authorization": {"Bearer " + password}})
	var bodies []string
	// Each step must have done what it should, or the search below would
	// look at answers that never held the secrets.
	do := func(method, path, body string, hdr map[string]string, want int) string {
		status, raw := e.callWith(t, method, path, body, hdr, nil)
		if status != want {
			t.Fatalf("%s %s: %d, want %d: %s", method, path, status, want, raw)
		}
		bodies = append(bodies, raw)
		return raw
	}
	do("POST", "/api/login", `{"password":"`+password+`x"}`, nil, 401)
	do("POST", "/api/login", `{"password":"`+password+`"}`, nil, 200)
	do("GET", "/api/settings", "", map[string]string{"Authorization": "Bearer " + password + "x"}, 401)
	if saved := do("POST", "/api/settings/hf-token", `{"token":"`+goodToken+`"}`, auth, 200); !strings.Contains(saved, `"set":true,"source":"db"`) {
		t.Fatalf("the token was not saved: %s", saved)
	}
	do("GET", "/api/settings", "", auth, 200)
	do("POST", "/api/settings/hf-token/test", "", auth, 200)
	do("POST", "/api/settings/hf-token/test", `{"token":"`+goodToken+`"}`, auth, 200)
	do("PATCH", "/api/settings", `{"theme":"light"}`, auth, 200)
	do("PATCH", "/api/settings", `{"hf_token":"`+goodToken+`"}`, auth, 400)
	do("POST", "/api/settings/hf-token", `{"token":"`+goodToken+`", "x":1}`, auth, 400)
	do("POST", "/api/settings/hf-token", `{"token":"`+goodToken+``, auth, 400)
	do("POST", "/api/activity", `{"type":"error","status":"failed","title":"t"}`, auth, 201)
	e.dial(t, http.Header{"Authorization": {"Bearer " + password}}).next(t, "snapshot", 2*time.Second)
	do("DELETE", "/api/settings/hf-token", "", auth, 200)
	time.Sleep(200 * time.Millisecond)
	e.stop()

	for name, secret := range map[string]string{"token": goodToken[3 : len(goodToken)-4], "password": password} {
		for i, b := range bodies {
			if strings.Contains(b, secret) {
				t.Errorf("response %d holds the %s: %s", i, name, b)
			}
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log holds the %s:\n%s", name, logs.String())
		}
	}
	frames, tokenShown := 0, false
	for {
		select {
		case raw := <-c.raw:
			frames++
			if strings.Contains(raw, goodToken[3:len(goodToken)-4]) || strings.Contains(raw, password) {
				t.Errorf("frame holds a secret: %s", raw)
			}
			tokenShown = tokenShown || strings.Contains(raw, `"hf_token":{"set":true,"source":"db"`)
			continue
		default:
		}
		break
	}
	// The snapshot, settings frames for the token saved, the theme and the
	// token removed, and an activity.
	if frames < 5 || !tokenShown {
		t.Fatalf("only %d frames seen (a settings frame with the saved token: %v); the check saw too little", frames, tokenShown)
	}
}

// Checking a token never sends it anywhere HuggingFace redirects to: not to
// another port of the same host (which Go's client would send it to), nor
// anywhere else.
func TestTokenCheckDoesNotFollowRedirects(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		io.WriteString(w, `{"type":"user","name":"mallory","auth":{"accessToken":{"role":"write"}}}`)
	}))
	defer other.Close()
	hf := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/api/whoami-v2", http.StatusTemporaryRedirect)
	}))
	defer hf.Close()

	e := start(t, options{hfEndpoint: hf.URL, envToken: goodToken})
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	for _, tc := range []struct{ path, body string }{
		{"/api/settings/hf-token", `{"token":"` + goodToken + `"}`},
		{"/api/settings/hf-token/test", `{"token":"` + goodToken + `"}`},
		{"/api/settings/hf-token/test", ""}, // the HF_TOKEN fallback
	} {
		status, raw := e.call(t, "POST", tc.path, tc.body, &env)
		if status != 502 || env.Error.Code != "hf_unreachable" || !strings.Contains(env.Error.Message, "redirect") {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, status, raw)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) > 0 {
		t.Fatalf("the redirect target was asked %d times, with Authorization %q", len(leaked), leaked)
	}
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if *v.HFToken.Source != "env" {
		t.Fatalf("a token was saved on a redirect's word: %+v", v.HFToken)
	}
}
