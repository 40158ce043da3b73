package ui

import (
	"dashboard/downloader"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

var testLimits = Limits{MinRetentionDays: 1, MaxRetentionDays: 3650}

func newApp() *fiber.App {
	app := fiber.New()
	app.Use(Handler(testLimits))
	app.Use(func(c *fiber.Ctx) error { return c.SendStatus(http.StatusTeapot) }) // "not ours"
	return app
}

func get(t *testing.T, app *fiber.App, method, target string) (*http.Response, string) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest(method, target, nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestHandlerServesPagesAndFiles(t *testing.T) {
	app := newApp()
	cases := []struct {
		method, target string
		status         int
		ctype, contain string
	}{
		{"GET", "/", 200, "text/html", `src="/js/home.js"`},
		{"GET", "/activity", 200, "text/html", `src="/js/activity.js"`},
		{"GET", "/activity/", 200, "text/html", `src="/js/activity.js"`},
		{"GET", "/history", 200, "text/html", `src="/js/history.js"`},
		{"GET", "/settings", 200, "text/html", `src="/js/settings.js"`},
		{"GET", "/login", 200, "text/html", `src="/js/login.js"`},
		{"HEAD", "/", 200, "text/html", ""},
		{"GET", "/js/live.js", 200, "javascript", "export class Live"},
		{"GET", "/css/app.css", 200, "text/css", "[data-theme=\"light\"]"},
		{"GET", "/favicon.svg", 200, "image/svg+xml", "<svg"},
		{"GET", "/index.html", http.StatusTeapot, "", ""}, // pages only at their routes
		{"GET", "/nope", http.StatusTeapot, "", ""},
		{"GET", "/js/nope.js", http.StatusTeapot, "", ""}, // unknown files fall through too
		{"POST", "/", http.StatusTeapot, "", ""},
	}
	for _, c := range cases {
		resp, body := get(t, app, c.method, c.target)
		if resp.StatusCode != c.status {
			t.Errorf("%s %s: status %d, want %d", c.method, c.target, resp.StatusCode, c.status)
			continue
		}
		if c.ctype != "" && !strings.Contains(resp.Header.Get("Content-Type"), c.ctype) {
			t.Errorf("%s %s: Content-Type %q, want %q", c.method, c.target, resp.Header.Get("Content-Type"), c.ctype)
		}
		if c.contain != "" && !strings.Contains(body, c.contain) {
			t.Errorf("%s %s: body lacks %q", c.method, c.target, c.contain)
		}
		if c.status == 200 && resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("%s %s: Cache-Control %q", c.method, c.target, resp.Header.Get("Cache-Control"))
		}
	}
}

var (
	attrRE    = regexp.MustCompile(`\s(src|href)="([^"]*)"`)
	scriptRE  = regexp.MustCompile(`<script\b[^>]*>`)
	inlineRE  = regexp.MustCompile(`(?i)\sstyle=|<style\b|\son[a-z]+=|javascript:`)
	importRE  = regexp.MustCompile(`(?m)^\s*import\b[^"]*"([^"]+)"|^\s*} from "([^"]+)"`)
	forbidJS  = regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|setAttribute\("style"|\.cssText`)
	remoteCSS = regexp.MustCompile(`@import|url\(`)
)

// TestPagesKeepTheCSP checks the static files against what the server's CSP
// allows (script-src 'self', style-src 'self': no inline code or styles) and
// that every file a page or module refers to exists.
func TestPagesKeepTheCSP(t *testing.T) {
	root, err := fs.Sub(static, "static")
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := render(testLimits)
	if err != nil {
		t.Fatal(err)
	}
	exists := func(p string) bool {
		if _, ok := rendered[p]; ok {
			return true
		}
		_, err := fs.Stat(root, strings.TrimPrefix(p, "/"))
		return err == nil
	}
	for name, raw := range rendered {
		html := string(raw)
		if m := inlineRE.FindString(html); m != "" {
			t.Errorf("%s: inline style or script (%q) breaks the CSP", name, m)
		}
		for _, tag := range scriptRE.FindAllString(html, -1) {
			if !strings.Contains(tag, `src="`) {
				t.Errorf("%s: inline <script> breaks the CSP: %s", name, tag)
			}
		}
		// theme.js must run before the stylesheet paints anything.
		head := html[:strings.Index(html, "</head>")]
		th, css := strings.Index(head, `<script src="/js/theme.js"></script>`), strings.Index(head, `rel="stylesheet"`)
		if th < 0 || css < 0 || th > css {
			t.Errorf("%s: the classic theme.js must come before the stylesheet in <head>", name)
		}
		for _, m := range attrRE.FindAllStringSubmatch(html, -1) {
			ref := m[2]
			if strings.HasPrefix(ref, "https://") || strings.HasPrefix(ref, "#") {
				continue
			}
			if !strings.HasPrefix(ref, "/") || !exists(strings.SplitN(ref, "?", 2)[0]) {
				t.Errorf("%s: %s=%q does not resolve", name, m[1], ref)
			}
		}
	}
	err = fs.WalkDir(root, "js", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := fs.ReadFile(root, p)
		if err != nil {
			return err
		}
		src := string(raw)
		if m := forbidJS.FindString(src); m != "" {
			t.Errorf("%s: %q (markup from strings, or inline styles) is not allowed", p, m)
		}
		for _, m := range importRE.FindAllStringSubmatch(src, -1) {
			spec := m[1] + m[2]
			if !strings.HasPrefix(spec, "./") {
				t.Errorf("%s: import %q is not a local module", p, spec)
				continue
			}
			if _, err := fs.Stat(root, path.Join(path.Dir(p), spec)); err != nil {
				t.Errorf("%s: import %q does not resolve", p, spec)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	css, err := fs.ReadFile(root, "css/app.css")
	if err != nil {
		t.Fatal(err)
	}
	if m := remoteCSS.FindString(string(css)); m != "" {
		t.Errorf("app.css: %q loads something; everything is in one file", m)
	}
}

// Every page has the one top bar, marks itself current in it, and the
// settings form takes its range from the server.
func TestPagesShareTheLayout(t *testing.T) {
	rendered, err := render(Limits{MinRetentionDays: 2, MaxRetentionDays: 99})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		html := string(rendered[p.Route])
		if !strings.HasPrefix(html, "<!doctype html>") || !strings.Contains(html, "<title>"+p.Title+" · Pod Dashboard</title>") || !strings.HasSuffix(strings.TrimSpace(html), "</html>") {
			t.Errorf("%s: not a whole page:\n%s", p.Route, html)
		}
		if !strings.Contains(html, `<script type="module" src="/js/`+p.Script+`"></script>`) {
			t.Errorf("%s: its module is not loaded", p.Route)
		}
		if strings.Count(html, "<main") != 1 {
			t.Errorf("%s: %d <main> elements", p.Route, strings.Count(html, "<main"))
		}
		if p.Nav == "" {
			if strings.Contains(html, `class="topbar"`) {
				t.Errorf("%s: a bare page has the top bar", p.Route)
			}
			continue
		}
		current := `<a href="` + p.Route + `" aria-current="page">` + p.Nav + `</a>`
		if strings.Count(html, `class="topbar"`) != 1 || !strings.Contains(html, current) || strings.Count(html, `aria-current="page"`) != 1 {
			t.Errorf("%s: top bar missing or the wrong entry is current", p.Route)
		}
	}
	if s := string(rendered["/settings"]); !strings.Contains(s, `min="2" max="99"`) || !strings.Contains(s, "From 2 to 99 days.") {
		t.Error("the retention range does not come from the server's limits")
	}
}

// The page's live download list keeps as many ended downloads as the
// server's: Retry on a workflow row is offered only while the server still
// keeps that download's files.
func TestLiveListKeepsWhatTheServerKeeps(t *testing.T) {
	js, err := fs.ReadFile(static, "static/js/state.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`export const KEEP_FINISHED = (\d+);`).FindSubmatch(js)
	if m == nil || string(m[1]) != strconv.Itoa(downloader.KeepFinished) {
		t.Fatalf("state.js KEEP_FINISHED = %q, the server keeps %d", m, downloader.KeepFinished)
	}
}
