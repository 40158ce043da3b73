package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// The settings page: which token is in use and where from, Test, Save
// (checked by HuggingFace first), Remove, and the retention with its limits.
func TestSettingsTokenAndRetention(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	d := startDashboard(t, hf, dashOptions{presets: testPresets, env: []string{"HF_TOKEN=hf_fromTheEnvironment42"}})
	browser := newBrowser(t)
	tb := newTab(t, browser, "settings")
	tb.navigate(d.url("/settings"))
	tb.waitLive()
	tb.waitFor("the HF_TOKEN fallback", `document.getElementById("token-state-text").textContent.includes("hf_…nt42") && document.getElementById("token-state-text").textContent.includes("HF_TOKEN") && document.getElementById("token-remove").hidden`)

	// Test with an empty field tests the token in use (the env one is not
	// valid at the fake HuggingFace).
	tb.click("#token-test")
	tb.waitFor("the test of the token in use", `document.getElementById("token-msg").dataset.kind === "error" && document.getElementById("token-msg").textContent.includes("does not accept")`)

	tb.typeInto("#token-input", "hf_notTheRightOne12345")
	tb.click("#token-save")
	tb.waitFor("the refusal", `document.getElementById("token-msg").textContent.includes("does not accept") && document.getElementById("token-input").getAttribute("aria-invalid") === "true" && !document.getElementById("token-save").hasAttribute("aria-busy")`)
	tb.waitFor("still the env token", `document.getElementById("token-state-text").textContent.includes("HF_TOKEN")`)

	// Another tab sees the token change live.
	other := newTab(t, browser, "other settings")
	other.navigate(d.url("/settings"))
	other.waitLive()

	tb.clearField("#token-input")
	tb.typeInto("#token-input", goodToken)
	tb.click("#token-test")
	tb.waitFor("the test result", `document.getElementById("token-msg").textContent === "This token works: alice, read access."`)
	tb.click("#token-save")
	tb.waitFor("saved", `document.getElementById("token-msg").textContent === "Token saved for alice." && document.getElementById("token-input").value === ""`)
	state := `document.getElementById("token-state-text").textContent`
	tb.waitFor("the saved token in use", state+`.includes("hf_…6789") && `+state+`.includes("saved in settings") && `+state+`.includes("alice") && !document.getElementById("token-remove").hidden`)
	other.waitFor("the other tab follows", state+`.includes("saved in settings")`)
	if got := eval[string](tb, `document.body.innerText`); strings.Contains(got, goodToken) {
		t.Fatal("the full token is on the page")
	}

	tb.click("#token-remove")
	tb.waitFor("back to HF_TOKEN", state+`.includes("HF_TOKEN") && document.getElementById("token-remove").hidden && document.getElementById("token-msg").textContent.includes("HF_TOKEN is used now")`)

	// Retention: the limits are explained, and a good value is saved.
	for _, bad := range []string{"0", "3651", "abc"} {
		tb.clearField("#retention-input")
		tb.typeInto("#retention-input", bad)
		tb.click("#retention-save")
		tb.waitFor("refused "+bad, `document.getElementById("retention-msg").textContent === "Enter a whole number of days from 1 to 3650." && document.getElementById("retention-input").getAttribute("aria-invalid") === "true"`)
	}
	tb.clearField("#retention-input")
	tb.typeInto("#retention-input", "14")
	tb.click("#retention-save")
	tb.waitFor("saved", `document.getElementById("retention-msg").textContent === "Saved: activity is kept for 14 days."`)
	other.waitFor("the other tab follows", `document.getElementById("retention-input").value === "14"`)
	var s struct {
		Days int `json:"activity_retention_days"`
	}
	d.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if s.Days != 14 {
		t.Fatalf("retention saved as %d, want 14", s.Days)
	}
}

// A presets.yaml that cannot be read is said on the home page, not hidden.
func TestPresetsErrorIsShown(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	d := startDashboard(t, hf, dashOptions{presets: "presets:\n  BROKEN: [this is not\n"})
	tb := newTab(t, newBrowser(t), "home")
	tb.navigate(d.url("/"))
	tb.waitLive()
	tb.waitFor("the notice", `!document.getElementById("presets-notice").hidden && document.getElementById("presets-notice").textContent.includes("presets.yaml has a problem") && document.getElementById("presets-notice").textContent.length > 40`)

	// Mending the file reaches the open page by itself: the notice goes and
	// the preset appears, with no reload and no request from the page.
	tb.do("mark the page", chromedp.Evaluate[chromedp.Void](`window.__sameDocument = true`))
	fixed := `presets:
  MENDED:
    name: Mended Preset
    files:
    - path: loras/mended.safetensors
      url: https://huggingface.co/org/repo/resolve/main/mended.safetensors
      size: 1024
  MIRROR:
    name: The same LoRA from a mirror
    files:
    - path: loras/mended.safetensors
      url: https://huggingface.co/other/mirror/resolve/main/mended.safetensors
      size: 1024
`
	if err := os.WriteFile(filepath.Join(d.workspace, "config", "presets.yaml"), []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("the mended preset", `document.getElementById("presets-notice").hidden && !!document.querySelector('li.preset[data-id="MENDED"]')`)
	// Two presets sharing a path without sha256 load, with a note about it.
	tb.waitFor("the note about the shared path", `!document.getElementById("presets-warnings").hidden && document.getElementById("presets-warnings-title").textContent === "presets.yaml: 1 note" && document.getElementById("presets-warnings-list").textContent.includes("loras/mended.safetensors is written by presets \"MENDED\" and \"MIRROR\"")`)
	tb.waitFor("the same page, not a reload", `window.__sameDocument === true`)
	tb.waitFor("no presets request from the page", `performance.getEntriesByType("resource").every((e) => !new URL(e.name).pathname.startsWith("/api/presets"))`)
}
