package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// A second dashboard on the same volume shows the read-only banner and
// disables what would change anything; when the writer stops, it takes
// over and the banner goes away, with no reload.
func TestReadOnlyBannerComesAndGoes(t *testing.T) {
	needBrowser(t)
	hf := newFakeHF(t)
	addTestFiles(hf)
	a := startDashboard(t, hf, dashOptions{presets: testPresets, args: []string{"--node-name", "pod-a"}})
	a.addActivity("generation", "completed", "Written by pod-a", "", nil)
	b := startDashboard(t, hf, dashOptions{workspace: a.workspace, args: []string{"--node-name", "pod-b"}})

	browser := newBrowser(t)
	home := newTab(t, browser, "home")
	home.navigate(b.url("/"))
	home.waitLive()
	const banner = `document.getElementById("readonly-banner")`
	home.waitFor("the read-only banner", `!`+banner+`.hidden && `+banner+`.textContent.trim() === "Read-only: the dashboard on pod-a manages this volume."`)
	const install = `document.querySelector('#presets-body [data-action="install"]')`
	home.waitFor("install buttons, disabled", install+` && `+install+`.matches(":disabled")`)
	// What only reads still works: the filters and the activity the writer wrote.
	if !eval[bool](home, `!document.getElementById("preset-search").matches(":disabled") && document.querySelector("#recent-list .act-title").textContent === "Written by pod-a"`) {
		t.Fatal("reading is not possible in read-only mode")
	}
	// Clicking a disabled install does nothing.
	home.do("click install", chromedp.Evaluate[chromedp.Void](install+`.click()`))
	b.mustAPI("GET", "/api/downloads", nil, http.StatusOK, nil)
	if got := eval[int](home, `document.querySelectorAll("#queue-list li.dl").length`); got != 0 {
		t.Fatalf("a disabled install queued %d downloads", got)
	}

	// The banner fits a phone, and DASHBOARD_SCREENSHOTS keeps a picture.
	home.do("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	if w := eval[[]int](home, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] || w[0] > 390 {
		t.Errorf("read-only home scrolls sideways at 390 px: %v", w)
	}
	if dir := os.Getenv("DASHBOARD_SCREENSHOTS"); dir != "" {
		buf, err := chromedp.Run(home.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "readonly-home-390-dark.png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	home.do("desktop size", chromedp.EmulateViewport(1280, 900))

	settings := newTab(t, browser, "settings")
	settings.navigate(b.url("/settings"))
	settings.waitLive()
	settings.waitFor("settings controls disabled", `document.getElementById("theme-dark").matches(":disabled") && document.getElementById("retention-save").matches(":disabled") && document.getElementById("token-save").matches(":disabled") && !`+banner+`.hidden`)

	// Mark the pages: a reload would lose the marks.
	home.do("mark", chromedp.Evaluate[chromedp.Void](`window.__kept = true`))
	settings.do("mark", chromedp.Evaluate[chromedp.Void](`window.__kept = true`))
	a.stop() // gives the lease up: pod-b takes it at its next look
	home.waitForWithin("the banner gone", banner+`.hidden && window.__kept === true`, 30*time.Second)
	home.waitFor("install buttons enabled", `!`+install+`.matches(":disabled")`)
	settings.waitFor("settings enabled", banner+`.hidden && window.__kept === true && !document.getElementById("theme-dark").matches(":disabled") && !document.getElementById("retention-save").matches(":disabled")`)

	// And it writes: the theme changes from the page that was read-only.
	settings.click(`label[for="theme-light"]`)
	settings.waitFor("the theme saved", `document.documentElement.dataset.theme === "light"`)
	var s struct{ Theme string }
	b.mustAPI("GET", "/api/settings", nil, http.StatusOK, &s)
	if s.Theme != "light" {
		t.Fatalf("theme after takeover = %q", s.Theme)
	}
}
