package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// testPresets are the presets most flows use; their files come from the fake
// HuggingFace (huggingface.co URLs are fetched from --hf-endpoint).
const testPresets = `presets:
  GATED_MODEL:
    name: Gated Test Model
    category: Image Generation
    type: image
    description: A gated checkpoint that needs a HuggingFace token.
    download_size: 4MB
    gated: true
    files:
    - path: checkpoints/gated-model.safetensors
      url: https://huggingface.co/acme/gated-model/resolve/main/gated-model.safetensors
      size: 4MB
  GATED_CLIP:
    name: Gated Text Encoder
    category: Image Generation
    type: image
    description: A second gated file, for the revoked-token prompt.
    gated: true
    files:
    - path: text_encoders/gated-clip.safetensors
      url: https://huggingface.co/acme/gated-clip/resolve/main/gated-clip.safetensors
      size: 300KB
  LICENSED_MODEL:
    name: Licensed Video Model
    category: Video Generation
    type: video
    description: Refused until its licence is accepted on HuggingFace.
    gated: true
    files:
    - path: diffusion_models/licensed.safetensors
      url: https://huggingface.co/acme/licensed-model/resolve/main/licensed.safetensors
      size: 1MB
  OPEN_LORA:
    name: Open LoRA
    category: Image Generation
    type: image
    description: A small open LoRA.
    files:
    - path: loras/open-lora.safetensors
      url: https://huggingface.co/acme/open-lora/resolve/main/open-lora.safetensors
      size: 1MB
`

func addTestFiles(hf *fakeHF) string {
	// 4 MiB in 64 KiB pieces every 45 ms: about 3 s, so progress shows.
	sum := hf.add("acme/gated-model", "gated-model.safetensors", 4<<20, true, 64<<10, 45*time.Millisecond)
	hf.add("acme/gated-clip", "gated-clip.safetensors", 300<<10, true, 64<<10, 10*time.Millisecond)
	hf.add("acme/open-lora", "open-lora.safetensors", 1<<20, false, 128<<10, 10*time.Millisecond)
	hf.deny("acme/licensed-model", "licensed.safetensors")
	return sum
}

// dlRow finds the queue row of a preset.
func dlRow(presetID string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#queue-list li.dl")].find((li) => li.querySelector(".dl-name").title === %s)`, js(presetID))
}

// Flow 1: the theme toggle is saved, survives a reload, and reaches another tab.
func TestThemePersistsAndReachesOtherTabs(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	addTestFiles(hf)
	d := startDashboard(t, hf, dashOptions{presets: testPresets})
	browser := newBrowser(t)

	settings := newTab(t, browser, "settings")
	settings.navigate(d.url("/settings"))
	settings.waitLive()
	settings.waitFor("dark checked", `document.getElementById("theme-dark").checked && document.documentElement.dataset.theme === "dark"`)
	darkBG := eval[string](settings, `getComputedStyle(document.body).backgroundColor`)

	home := newTab(t, browser, "home")
	home.navigate(d.url("/"))
	home.waitLive()
	home.waitFor("dark home", `document.documentElement.dataset.theme === "dark"`)

	settings.click(`label[for="theme-light"]`)
	settings.waitFor("light applied", `document.documentElement.dataset.theme === "light"`)
	if bg := eval[string](settings, `getComputedStyle(document.body).backgroundColor`); bg == darkBG {
		t.Fatalf("the page background stayed %s after switching to light", bg)
	}
	home.waitFor("light in the other tab", `document.documentElement.dataset.theme === "light"`)

	var s struct{ Theme string }
	d.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if s.Theme != "light" {
		t.Fatalf("saved theme %q, want light", s.Theme)
	}

	// No flash: theme.js sets the theme from storage before the first paint.
	// With the WebSocket blocked, storage is the only place it can come from.
	cold := newTab(t, browser, "no websocket")
	// Network.setBlockedURLs does not stop WebSockets, so the page gets a
	// WebSocket that never connects.
	if _, err := chromedp.Call(cold.ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.WebSocket = class { constructor() { setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 10); } close() {} send() {} };`,
	}); err != nil {
		t.Fatal(err)
	}
	cold.navigate(d.url("/activity"))
	if got := eval[string](cold, `document.documentElement.dataset.theme`); got != "light" {
		t.Fatalf("theme without the WebSocket: %q, want light", got)
	}
	// The page still loads what it can over plain HTTP, and says the live link is down.
	cold.waitFor("the log over HTTP and the banner", `!document.getElementById("log-empty").hidden && !document.getElementById("reconnect-banner").hidden`)

	settings.do("reload", chromedp.Reload())
	settings.waitLive()
	settings.waitFor("light after reload", `document.documentElement.dataset.theme === "light" && document.getElementById("theme-light").checked`)

	// And back, from the keyboard: arrow keys move within the radio group.
	settings.do("focus the light radio", chromedp.Focus(chromedp.CSS("#theme-light")))
	settings.do("arrow to dark", chromedp.KeyEvent(kb.ArrowLeft))
	home.waitFor("dark again in the other tab", `document.documentElement.dataset.theme === "dark"`)
}

// Flow 2: Install on a gated preset with no token opens the token prompt;
// Save & Download saves a checked token and the download runs to the end.
// A token revoked later brings the prompt back.
func TestGatedInstallAsksForTokenAndDownloads(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	sum := addTestFiles(hf)
	d := startDashboard(t, hf, dashOptions{presets: testPresets})
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()

	card := `li.preset[data-id="GATED_MODEL"]`
	install := card + ` button[data-action="install"]`
	tb.waitFor("the gated preset", `document.querySelector('`+install+`') && document.querySelector('`+card+` .badge[data-tone="warning"]').textContent.includes("Gated")`)

	tb.click(install)
	tb.waitFor("the token modal", `document.getElementById("token-modal").open`)
	tb.waitFor("focus in the token field", `document.activeElement.id === "token-modal-input"`)
	if got := eval[string](tb, `document.getElementById("token-modal-input").type`); got != "password" {
		t.Fatalf("token input type %q, want password", got)
	}
	link := eval[map[string]string](tb, `(() => { const a = document.getElementById("token-modal-get"); return {href: a.href, target: a.target, rel: a.rel, text: a.textContent}; })()`)
	if link["href"] != "https://huggingface.co/settings/tokens" || link["target"] != "_blank" || !strings.Contains(link["rel"], "noopener") || !strings.Contains(link["text"], "Get one here") {
		t.Fatalf("token link: %v", link)
	}
	for _, id := range []string{"token-modal-test", "token-modal-cancel", "token-modal-save"} {
		if tag := eval[string](tb, `document.getElementById("`+id+`").tagName`); tag != "BUTTON" {
			t.Fatalf("#%s is a %s, want a button", id, tag)
		}
	}

	// Tab stays inside the modal.
	for i := range 7 {
		tb.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if !eval[bool](tb, `document.getElementById("token-modal").contains(document.activeElement)`) {
			t.Fatalf("after %d Tabs the focus left the modal: %s", i+1, eval[string](tb, `document.activeElement.outerHTML.slice(0, 120)`))
		}
	}
	// Escape closes it and the focus goes back to Install.
	tb.do("press Escape", chromedp.KeyEvent(kb.Escape))
	tb.waitFor("the modal closed", `!document.getElementById("token-modal").open`)
	tb.waitFor("focus back on Install", `document.activeElement === document.querySelector('`+install+`')`)

	// Enter on the focused Install opens it again: the flow works from the keyboard.
	tb.do("press Enter", chromedp.KeyEvent(kb.Enter))
	tb.waitFor("the token modal again", `document.getElementById("token-modal").open && document.activeElement.id === "token-modal-input"`)

	// A wrong token: Test says why, Save refuses it and nothing is saved.
	tb.typeInto("#token-modal-input", "hf_wrongwrongwrongwrong")
	tb.click("#token-modal-test")
	tb.waitFor("the test refusal", `document.getElementById("token-modal-msg").dataset.kind === "error" && document.getElementById("token-modal-msg").textContent.includes("does not accept")`)
	tb.click("#token-modal-save")
	tb.waitFor("save finished", `!document.getElementById("token-modal-save").hasAttribute("aria-busy") && document.getElementById("token-modal-msg").textContent.includes("does not accept")`)
	if !eval[bool](tb, `document.getElementById("token-modal").open`) {
		t.Fatal("the modal closed after a refused token")
	}
	var s struct {
		HFToken struct {
			Set      bool    `json:"set"`
			Username *string `json:"username"`
		} `json:"hf_token"`
	}
	d.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if s.HFToken.Set {
		t.Fatal("a refused token was saved")
	}

	// The good token: Test shows who it belongs to, then Save & Download.
	tb.clearField("#token-modal-input")
	tb.typeInto("#token-modal-input", goodToken)
	tb.click("#token-modal-test")
	tb.waitFor("the test result", `document.getElementById("token-modal-msg").textContent === "Valid token for alice (read access)."`)
	tb.click("#token-modal-save")
	tb.waitFor("the modal closed after saving", `!document.getElementById("token-modal").open`)

	row := dlRow("GATED_MODEL")
	tb.waitFor("progress under way", `(() => {
		const r = `+row+`;
		if (!r || r.dataset.status !== "downloading") return false;
		const p = parseInt(r.querySelector(".dl-pct").textContent, 10);
		const stats = r.querySelector(".dl-stats").textContent;
		const bar = parseFloat(r.querySelector(".progress-fill").style.width);
		return p > 0 && p < 100 && bar === p && /MB of 4\.2 MB/.test(stats) && /\/s/.test(stats) && r.querySelector(".dl-file").textContent === "checkpoints/gated-model.safetensors";
	})()`)
	tb.waitForWithin("the download completed", `(() => { const r = `+row+`; return r && r.dataset.status === "completed" && r.querySelector(".badge").textContent === "Completed" && r.querySelector(".dl-pct").textContent === "100%"; })()`, 30*time.Second)
	tb.waitFor("the preset installed", `document.querySelector('`+card+`').dataset.status === "installed" && document.querySelector('`+card+` .badge').textContent === "Installed" && !document.querySelector('`+install+`').offsetParent`)

	raw, err := os.ReadFile(filepath.Join(d.workspace, "models", "checkpoints", "gated-model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256.Sum256(raw); hex.EncodeToString(got[:]) != sum {
		t.Fatal("the downloaded file is not the served one")
	}
	if got := hf.lastAuth("/acme/gated-model/resolve/main/gated-model.safetensors"); got != "Bearer "+goodToken {
		t.Fatalf("download sent Authorization %q", got)
	}
	d.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if !s.HFToken.Set || s.HFToken.Username == nil || *s.HFToken.Username != "alice" {
		t.Fatalf("token after Save & Download: %+v", s.HFToken)
	}

	// The token is revoked on HuggingFace: the next gated download fails
	// with hf_token_required and the prompt comes back by itself.
	hf.revoke(true)
	tb.click(`li.preset[data-id="GATED_CLIP"] button[data-action="install"]`)
	tb.waitForWithin("the prompt after a revoked token", `document.getElementById("token-modal").open && document.querySelector("#token-modal .modal-text").textContent.includes("refused the token in use")`, 20*time.Second)
	clip := dlRow("GATED_CLIP")
	tb.waitFor("the failed row says why", `(() => { const r = `+clip+`; return r && r.dataset.status === "failed" && r.querySelector(".dl-error").textContent.includes("HuggingFace needs a valid token") && !r.querySelector('[data-action="retry"]').hidden; })()`)
	hf.revoke(false)
	tb.typeInto("#token-modal-input", goodToken)
	tb.click("#token-modal-save")
	tb.waitFor("the modal closed", `!document.getElementById("token-modal").open`)
	tb.waitForWithin("the retried download completed", `document.querySelector('li.preset[data-id="GATED_CLIP"]').dataset.status === "installed" && (`+clip+`).dataset.status === "completed"`, 20*time.Second)

	// A licence not accepted (403) asks for something else: the model page.
	tb.click(`li.preset[data-id="LICENSED_MODEL"] button[data-action="install"]`)
	tb.waitForWithin("the licence prompt", `document.getElementById("access-modal").open && !document.getElementById("token-modal").open`, 20*time.Second)
	link = eval[map[string]string](tb, `(() => { const a = document.getElementById("access-modal-link"); return {href: a.href, target: a.target, rel: a.rel}; })()`)
	if link["href"] != "https://huggingface.co/acme/licensed-model" || link["target"] != "_blank" || !strings.Contains(link["rel"], "noopener") {
		t.Fatalf("licence link: %v", link)
	}
	licensed := dlRow("LICENSED_MODEL")
	tb.waitFor("the row offers the licence", `(() => { const r = `+licensed+`; return r && r.querySelector(".dl-error").textContent.includes("Licence not accepted") && !r.querySelector('[data-action="licence"]').hidden; })()`)
	tb.do("press Escape", chromedp.KeyEvent(kb.Escape))
	tb.waitFor("the licence prompt closed", `!document.getElementById("access-modal").open`)
}

// Flow 3: Clear History asks first, then empties the log in every tab.
// Paging and filters are checked on the way.
func TestClearHistoryEmptiesEveryTab(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	d := startDashboard(t, hf, dashOptions{presets: testPresets})
	for i := range 55 {
		d.addActivity("download", "completed", fmt.Sprintf("Downloaded model %d", i), "MODEL", map[string]any{"bytes": 1000000 * i})
	}
	for i := range 5 {
		d.addActivity("error", "failed", fmt.Sprintf("Error %d", i), "something broke", nil)
	}
	browser := newBrowser(t)
	a := newTab(t, browser, "activity A")
	a.navigate(d.url("/activity"))
	a.waitLive()
	a.waitFor("the first page", `document.querySelectorAll("#log-list li.act").length === 50 && !document.getElementById("log-more-wrap").hidden`)
	if first := eval[string](a, `document.querySelector("#log-list li.act .act-title").textContent`); first != "Error 4" {
		t.Fatalf("newest entry %q, want Error 4", first)
	}
	a.click("#log-more")
	a.waitFor("all 60 rows", `document.querySelectorAll("#log-list li.act").length === 60 && document.getElementById("log-more-wrap").hidden`)
	if n := eval[int](a, `new Set([...document.querySelectorAll("#log-list li.act")].map((li) => li.dataset.id)).size`); n != 60 {
		t.Fatalf("%d distinct rows, want 60", n)
	}

	a.do("filter errors", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("filter-type"); s.value = "error"; s.dispatchEvent(new Event("change")); })()`))
	a.waitFor("only errors", `(() => { const rows = [...document.querySelectorAll("#log-list li.act")]; return rows.length === 5 && rows.every((r) => r.dataset.type === "error"); })()`)
	if q := eval[string](a, `location.search`); q != "?type=error" {
		t.Fatalf("filter not in the URL: %q", q)
	}
	// A live entry that matches the filter arrives at the top; one that does not stays out.
	d.addActivity("error", "failed", "Live error", "", nil)
	d.addActivity("download", "started", "Live download", "", nil)
	a.waitFor("the live error on top", `document.querySelector("#log-list li.act .act-title").textContent === "Live error" && document.querySelectorAll("#log-list li.act").length === 6`)
	a.do("clear the filter", chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("filter-type"); s.value = ""; s.dispatchEvent(new Event("change")); })()`))
	a.waitFor("unfiltered again", `document.querySelectorAll("#log-list li.act").length === 50`)

	b := newTab(t, browser, "activity B")
	b.navigate(d.url("/activity"))
	b.waitLive()
	b.waitFor("rows in B", `document.querySelectorAll("#log-list li.act").length === 50`)
	home := newTab(t, browser, "home")
	home.navigate(d.url("/"))
	home.waitLive()
	home.waitFor("recent activity on home", `document.querySelectorAll("#recent-list li.act").length === 8`)

	// Cancel first: nothing is deleted.
	a.click("#clear-history")
	a.waitFor("the confirmation", `document.getElementById("clear-dialog").open`)
	if role := eval[string](a, `document.activeElement.textContent`); role != "Cancel" {
		t.Fatalf("focus on %q when the confirmation opens, want Cancel", role)
	}
	a.do("press Escape", chromedp.KeyEvent(kb.Escape))
	a.waitFor("closed, focus back", `!document.getElementById("clear-dialog").open && document.activeElement.id === "clear-history"`)
	var list struct{ Activity []any }
	d.mustAPI("GET", "/api/activity", nil, http.StatusOK, &list)
	if len(list.Activity) != 50 {
		t.Fatalf("activity after cancelling: %d rows", len(list.Activity))
	}

	a.click("#clear-history")
	a.waitFor("the confirmation", `document.getElementById("clear-dialog").open`)
	a.click("#clear-dialog-confirm")
	a.waitFor("A empty", `!document.getElementById("clear-dialog").open && document.querySelectorAll("#log-list li.act").length === 0 && !document.getElementById("log-empty").hidden`)
	b.waitFor("B empty", `document.querySelectorAll("#log-list li.act").length === 0 && !document.getElementById("log-empty").hidden && document.getElementById("log-more-wrap").hidden`)
	home.waitFor("home empty", `document.querySelectorAll("#recent-list li.act").length === 0 && !document.getElementById("recent-empty").hidden`)
	d.mustAPI("GET", "/api/activity", nil, http.StatusOK, &list)
	if len(list.Activity) != 0 {
		t.Fatalf("activity after clearing: %d rows", len(list.Activity))
	}
}

// Flow 4: when the server goes away the page says so and keeps trying; when
// it is back (same workspace and port) the banner goes and the new snapshot
// is shown.
func TestReconnectsAfterRestart(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	d := startDashboard(t, hf, dashOptions{presets: testPresets})
	d.mustAPI("PATCH", "/api/settings", map[string]any{"theme": "light"}, http.StatusOK, nil)
	d.addActivity("generation", "completed", "Before the restart", "portrait.json", nil)

	tb := newTab(t, newBrowser(t), "activity")
	tb.navigate(d.url("/activity"))
	tb.waitLive()
	tb.waitFor("state before", `document.documentElement.dataset.theme === "light" && document.querySelector("#log-list .act-title").textContent === "Before the restart" && document.getElementById("retention-note").textContent.includes("30 days")`)
	if !eval[bool](tb, `document.getElementById("reconnect-banner").hidden`) {
		t.Fatal("the reconnect banner shows while connected")
	}

	d.stop()
	tb.waitFor("the reconnect banner", `!document.getElementById("reconnect-banner").hidden && document.getElementById("live").dataset.state === "down" && document.getElementById("reconnect-banner").textContent.includes("Reconnecting")`)
	if !eval[bool](tb, `document.querySelector("#log-list .act-title").textContent === "Before the restart"`) {
		t.Fatal("the page lost what it showed when the connection dropped")
	}

	// Restarted with another retention: the fresh snapshot must show it.
	d.args = append(d.args, "--retention-days", "7")
	d.start()
	tb.waitForWithin("reconnected", `document.getElementById("reconnect-banner").hidden && document.getElementById("live").dataset.state === "live"`, 40*time.Second)
	tb.waitFor("state after", `document.documentElement.dataset.theme === "light" && document.querySelector("#log-list .act-title").textContent === "Before the restart" && document.getElementById("retention-note").textContent.includes("7 days")`)
	d.addActivity("error", "failed", "After the restart", "", nil)
	tb.waitFor("a live row after the restart", `document.querySelector("#log-list .act-title").textContent === "After the restart"`)
}

// Flow 5: no page writes an error to the console, breaks the CSP, or throws.
func TestPagesHaveNoConsoleErrors(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	addTestFiles(hf)
	d := startDashboard(t, hf, dashOptions{presets: testPresets})
	d.addActivity("download", "completed", "Downloaded Open LoRA", "OPEN_LORA", map[string]any{"bytes": 1048576})
	d.addActivity("error", "failed", "ComfyUI is unreachable", "http://127.0.0.1:8188", nil)
	tb := newTab(t, newBrowser(t), "pages")

	// The recorder must be able to see a violation, or this test proves nothing.
	tb.navigate(d.url("/settings"))
	tb.waitLive()
	tb.do("break the CSP", chromedp.Evaluate[chromedp.Void](`document.body.setAttribute("style", "outline: 1px solid red")`))
	deadline := time.Now().Add(5 * time.Second)
	for !hasText(tb.errors(), "CSP violation: style-src-attr") {
		if time.Now().After(deadline) {
			t.Fatalf("an inline style was not reported as a CSP violation: %v", tb.errors())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The browser reports it too, on its own schedule; let both arrive.
	time.Sleep(300 * time.Millisecond)
	tb.con.reset()

	pages := []struct{ path, ready string }{
		{"/", `document.querySelector('li.preset[data-id="OPEN_LORA"]') && document.querySelectorAll("#recent-list li.act").length === 2`},
		{"/activity", `document.querySelectorAll("#log-list li.act").length === 2`},
		{"/history", `!document.getElementById("hist-empty").hidden`},
		{"/settings", `document.getElementById("retention-input").value === "30" && document.getElementById("token-state-text").textContent.includes("No token")`},
		{"/login", `document.getElementById("login-sub").textContent.includes("No password is set")`},
	}
	for _, p := range pages {
		tb.navigate(d.url(p.path))
		if p.path != "/login" {
			tb.waitLive()
			tb.waitFor("no Log out without a password", `document.getElementById("logout").hidden`)
			tb.waitFor("the version", `document.getElementById("version").textContent.startsWith("dashboard ")`)
		}
		tb.waitFor(p.path+" ready", p.ready)
		time.Sleep(300 * time.Millisecond) // late errors
		if errs := tb.errors(); len(errs) > 0 {
			t.Errorf("%s: console errors: %v", p.path, errs)
		}
		tb.con.reset()
	}
}

func hasText(es []consoleEntry, prefix string) bool {
	for _, e := range es {
		if strings.HasPrefix(e.text, prefix) {
			return true
		}
	}
	return false
}

// Flow 6: with a password, pages send the browser to log in, and then back.
func TestLoginWithPassword(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	d := startDashboard(t, hf, dashOptions{presets: testPresets, password: "correct horse battery"})
	tb := newTab(t, newBrowser(t), "login")

	tb.navigate(d.url("/settings"))
	tb.waitFor("the login page", `location.pathname === "/login" && new URLSearchParams(location.search).get("next") === "/settings" && document.activeElement.id === "password"`)
	tb.typeInto("#password", "wrong guess")
	tb.click("#login-submit")
	tb.waitFor("the wrong-password message", `document.getElementById("login-msg").textContent === "That password is not right. Try again." && document.getElementById("password").getAttribute("aria-invalid") === "true"`)

	tb.clearField("#password")
	tb.typeInto("#password", "correct horse battery\n") // Enter submits
	tb.waitFor("back on settings", `location.pathname === "/settings"`)
	tb.waitLive()
	tb.waitFor("settings loaded and Log out shown", `document.getElementById("retention-input").value === "30" && !document.getElementById("logout").hidden`)

	// The session also covers the dashboard itself.
	tb.navigate(d.url("/"))
	tb.waitLive()
	tb.waitFor("presets on home", `document.querySelector('li.preset[data-id="OPEN_LORA"]')`)

	tb.click("#logout")
	tb.waitFor("logged out", `location.pathname === "/login"`)
	tb.navigate(d.url("/activity"))
	tb.waitFor("login asked again", `location.pathname === "/login" && new URLSearchParams(location.search).get("next") === "/activity"`)
}
