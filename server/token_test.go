package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"dashboard/downloader"
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
// HuggingFace and Civitai tokens and the dashboard password in every
// response, every frame and every log line.
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
	if saved := do("POST", "/api/settings/civitai-token", `{"token":"`+goodCivitaiToken+`"}`, auth, 200); !strings.Contains(saved, `"civitai_token":{"set":true,"source":"db"`) {
		t.Fatalf("the Civitai token was not saved: %s", saved)
	}
	do("POST", "/api/settings/civitai-token/test", "", auth, 200)
	do("POST", "/api/settings/civitai-token/test", `{"token":"`+goodCivitaiToken+`"}`, auth, 200)
	do("PATCH", "/api/settings", `{"civitai_token":"`+goodCivitaiToken+`"}`, auth, 400)
	do("POST", "/api/settings/civitai-token", `{"token":"`+goodCivitaiToken+`", "x":1}`, auth, 400)
	do("POST", "/api/activity", `{"type":"error","status":"failed","title":"t"}`, auth, 201)
	e.dial(t, http.Header{"Authorization": {"Bearer " + password}}).next(t, "snapshot", 2*time.Second)
	do("DELETE", "/api/settings/hf-token", "", auth, 200)
	do("DELETE", "/api/settings/civitai-token", "", auth, 200)
	time.Sleep(200 * time.Millisecond)
	e.stop()

	secrets := map[string]string{"token": goodToken[3 : len(goodToken)-4], "Civitai token": goodCivitaiToken[3 : len(goodCivitaiToken)-4], "password": password}
	for name, secret := range secrets {
		for i, b := range bodies {
			if strings.Contains(b, secret) {
				t.Errorf("response %d holds the %s: %s", i, name, b)
			}
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log holds the %s:\n%s", name, logs.String())
		}
	}
	frames, tokenShown, civitaiShown := 0, false, false
	for {
		select {
		case raw := <-c.raw:
			frames++
			for name, secret := range secrets {
				if strings.Contains(raw, secret) {
					t.Errorf("frame holds the %s: %s", name, raw)
				}
			}
			tokenShown = tokenShown || strings.Contains(raw, `"hf_token":{"set":true,"source":"db"`)
			civitaiShown = civitaiShown || strings.Contains(raw, `"civitai_token":{"set":true,"source":"db"`)
			continue
		default:
		}
		break
	}
	// The snapshot, settings frames for the tokens saved, the theme and the
	// tokens removed, and an activity.
	if frames < 7 || !tokenShown || !civitaiShown {
		t.Fatalf("only %d frames seen (settings frames with the saved tokens: %v, %v); the check saw too little", frames, tokenShown, civitaiShown)
	}
}

// Checking a token never sends it anywhere the service redirects to: not to
// another port of the same host (which Go's client would send it to), nor
// anywhere else. The same for HuggingFace and Civitai.
func TestTokenCheckDoesNotFollowRedirects(t *testing.T) {
	for _, svc := range []struct {
		name, route, check, token, code, source string
		opts                                    func(endpoint string) options
	}{
		{"huggingface", "/api/settings/hf-token", "/api/whoami-v2", goodToken, "hf_unreachable", "hf_token",
			func(endpoint string) options { return options{hfEndpoint: endpoint, envToken: goodToken} }},
		{"civitai", "/api/settings/civitai-token", "/api/v1/me", goodCivitaiToken, "civitai_unreachable", "civitai_token",
			func(endpoint string) options {
				return options{civitaiEndpoint: endpoint, civitaiEnvToken: goodCivitaiToken}
			}},
	} {
		t.Run(svc.name, func(t *testing.T) {
			var mu sync.Mutex
			var leaked []string
			other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				leaked = append(leaked, r.Header.Get("Authorization"))
				mu.Unlock()
				io.WriteString(w, `{"type":"user","name":"mallory","username":"mallory","auth":{"accessToken":{"role":"write"}}}`)
			}))
			defer other.Close()
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+svc.check, http.StatusTemporaryRedirect)
			}))
			defer redirector.Close()

			e := start(t, svc.opts(redirector.URL))
			var env struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			for _, tc := range []struct{ path, body string }{
				{svc.route, `{"token":"` + svc.token + `"}`},
				{svc.route + "/test", `{"token":"` + svc.token + `"}`},
				{svc.route + "/test", ""}, // the env fallback
			} {
				status, raw := e.call(t, "POST", tc.path, tc.body, &env)
				if status != 502 || env.Error.Code != svc.code || !strings.Contains(env.Error.Message, "redirect") {
					t.Errorf("%s %s: %d %s", tc.path, tc.body, status, raw)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(leaked) > 0 {
				t.Fatalf("the redirect target was asked %d times, with Authorization %q", len(leaked), leaked)
			}
			var raw map[string]json.RawMessage
			e.call(t, "GET", "/api/settings", "", &raw)
			if !strings.Contains(string(raw[svc.source]), `"source":"env"`) {
				t.Fatalf("a token was saved on a redirect's word: %s", raw[svc.source])
			}
		})
	}
}

// The Civitai token: saved only once Civitai's /api/v1/me accepts it (a
// 401 or a 403 is invalid_token and saves nothing), shown masked with its
// username, tested, removed; the HuggingFace token is its own.
func TestCivitaiTokenSaveTestRemove(t *testing.T) {
	e := start(t, options{})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)

	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	for _, bad := range []string{"civWrongTokenXXXXXXXXXXXXXXX", forbiddenCivitaiToken, "  ", "two words"} {
		env.Error.Code = ""
		status, raw := e.call(t, "POST", "/api/settings/civitai-token", `{"token":"`+bad+`"}`, &env)
		if status != 400 || env.Error.Code != "invalid_token" || !strings.Contains(env.Error.Message, "Civitai") {
			t.Fatalf("token %q: %d %s", bad, status, raw)
		}
	}
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if v.CivitaiToken.Set || v.HFToken.Set {
		t.Fatalf("a refused token was saved: %+v %+v", v.CivitaiToken, v.HFToken)
	}
	if status, raw := e.call(t, "PATCH", "/api/settings", `{"civitai_token":"`+goodCivitaiToken+`"}`, &env); status != 400 || env.Error.Code != "invalid_setting" || !strings.Contains(env.Error.Message, "/api/settings/civitai-token") {
		t.Fatalf("PATCH civitai_token: %d %s", status, raw)
	}

	v = settings.View{}
	status, raw := e.call(t, "POST", "/api/settings/civitai-token", `{"token":"`+goodCivitaiToken+`"}`, &v)
	if status != 200 || !v.CivitaiToken.Set || *v.CivitaiToken.Source != "db" || *v.CivitaiToken.Masked != "civ…abcd" || *v.CivitaiToken.Username != "carol" || v.HFToken.Set {
		t.Fatalf("save: %d %s", status, raw)
	}
	f := c.next(t, "settings", time.Second)
	if !strings.Contains(string(f.Data), `"civitai_token":{"set":true,"source":"db","masked":"civ…abcd","username":"carol"}`) {
		t.Fatalf("settings frame %s", f.Data)
	}

	var check settings.TokenCheck
	if status, raw := e.call(t, "POST", "/api/settings/civitai-token/test", "", &check); status != 200 || !check.Valid || check.Username != "carol" {
		t.Fatalf("test current: %d %s", status, raw)
	}
	check = settings.TokenCheck{}
	if status, raw := e.call(t, "POST", "/api/settings/civitai-token/test", `{"token":"`+forbiddenCivitaiToken+`"}`, &check); status != 200 || check.Valid || !strings.Contains(check.Message, "Civitai does not accept") {
		t.Fatalf("test a refused token: %d %s", status, raw)
	}
	// The HuggingFace test knows nothing of the Civitai token.
	check = settings.TokenCheck{Valid: true}
	if e.call(t, "POST", "/api/settings/hf-token/test", "", &check); check.Valid || !strings.Contains(check.Message, "No HuggingFace token") {
		t.Fatalf("hf test with only a Civitai token: %+v", check)
	}

	v = settings.View{CivitaiToken: settings.TokenView{Set: true}}
	if status, raw := e.call(t, "DELETE", "/api/settings/civitai-token", "", &v); status != 200 || v.CivitaiToken.Set {
		t.Fatalf("after delete: %d %s", status, raw)
	}
	c.next(t, "settings", time.Second)
	check = settings.TokenCheck{Valid: true}
	if status, raw := e.call(t, "POST", "/api/settings/civitai-token/test", "", &check); status != 200 || check.Valid || !strings.Contains(check.Message, "No Civitai token is set") {
		t.Fatalf("no token but test says: %d %s", status, raw)
	}
}

// CIVITAI_TOKEN is used when none is saved; a saved one wins, and removing
// it goes back to the environment's.
func TestCivitaiTokenEnvFallback(t *testing.T) {
	const other = "civEnvironmentToken0000000wxyz"
	e := start(t, options{civitaiEnvToken: goodCivitaiToken})
	var v settings.View
	e.call(t, "GET", "/api/settings", "", &v)
	if !v.CivitaiToken.Set || *v.CivitaiToken.Source != "env" || *v.CivitaiToken.Masked != "civ…abcd" || v.CivitaiToken.Username != nil || v.HFToken.Set {
		t.Fatalf("env token: %+v", v.CivitaiToken)
	}
	var check settings.TokenCheck
	if e.call(t, "POST", "/api/settings/civitai-token/test", "", &check); !check.Valid || check.Username != "carol" {
		t.Fatalf("test env token: %+v", check)
	}
	e.call(t, "GET", "/api/settings", "", &v)
	if v.CivitaiToken.Username == nil || *v.CivitaiToken.Username != "carol" {
		t.Fatalf("env token username not shown after a test: %+v", v.CivitaiToken)
	}
	if status, raw := e.call(t, "POST", "/api/settings/civitai-token", `{"token":"`+other+`"}`, nil); status != 400 {
		t.Fatalf("a token Civitai refuses was saved: %d %s", status, raw)
	}
	v = settings.View{}
	if e.call(t, "POST", "/api/settings/civitai-token", `{"token":"`+goodCivitaiToken+`"}`, &v); *v.CivitaiToken.Source != "db" {
		t.Fatalf("the saved token does not win: %+v", v.CivitaiToken)
	}
	v = settings.View{}
	if e.call(t, "DELETE", "/api/settings/civitai-token", "", &v); !v.CivitaiToken.Set || *v.CivitaiToken.Source != "env" {
		t.Fatalf("after removing the saved token: %+v", v.CivitaiToken)
	}
}

func TestCivitaiUnreachable(t *testing.T) {
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	for name, endpoint := range map[string]string{"503": down.URL, "refused": "http://127.0.0.1:1"} {
		t.Run(name, func(t *testing.T) {
			e := start(t, options{civitaiEndpoint: endpoint})
			var env struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			for _, path := range []string{"/api/settings/civitai-token", "/api/settings/civitai-token/test"} {
				status, raw := e.call(t, "POST", path, `{"token":"`+goodCivitaiToken+`"}`, &env)
				if status != 502 || env.Error.Code != "civitai_unreachable" || !strings.Contains(env.Error.Message, "Civitai") {
					t.Fatalf("%s: %d %s", path, status, raw)
				}
			}
			v := settings.View{CivitaiToken: settings.TokenView{Set: true}}
			if e.call(t, "GET", "/api/settings", "", &v); v.CivitaiToken.Set {
				t.Fatal("token saved although Civitai could not check it")
			}
		})
	}
}

// Installing a preset whose Civitai file needs a login, with no token:
// 403 civitai_token_required up front; with the token saved, it installs.
func TestCivitaiInstallNeedsToken(t *testing.T) {
	civ := fakeCivitai(t)
	e := start(t, options{civitaiEndpoint: civ.URL, presets: `presets:
  CIV_LOGIN:
    name: Needs a login
    files:
    - path: loras/login.safetensors
      url: https://civitai.com/api/download/models/1
      size: 262144
  CIV_OPEN:
    name: Public
    files:
    - path: loras/open.safetensors
      url: https://civitai.green/api/download/models/2
      size: 262144
`})
	c := e.dial(t, nil)
	c.next(t, "snapshot", 2*time.Second)
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if status, raw := e.call(t, "POST", "/api/presets/CIV_LOGIN/install", "", &env); status != 403 || env.Error.Code != "civitai_token_required" {
		t.Fatalf("install without a token: %d %s", status, raw)
	}
	var d downloader.Download
	if status, raw := e.call(t, "POST", "/api/presets/CIV_OPEN/install", "", &d); status != 202 {
		t.Fatalf("a public Civitai model: %d %s", status, raw)
	}
	waitDownload(t, c, d.ID, "completed", 10*time.Second)
	if status, raw := e.call(t, "POST", "/api/settings/civitai-token", `{"token":"`+goodCivitaiToken+`"}`, nil); status != 200 {
		t.Fatalf("save: %d %s", status, raw)
	}
	if status, raw := e.call(t, "POST", "/api/presets/CIV_LOGIN/install", "", &d); status != 202 {
		t.Fatalf("install with the token: %d %s", status, raw)
	}
	waitDownload(t, c, d.ID, "completed", 10*time.Second)
}
