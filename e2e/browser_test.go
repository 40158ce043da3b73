package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// newBrowser starts a headless Chromium with a fresh profile; it ends with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	needBrowser(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(env.chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		// Tabs in the background must keep their timers (reconnects) running.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do starts the browser and ties it to ctx, so no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one browser tab with a record of its console.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context
	con  *consoleLog
}

// consoleLog keeps what the page wrote to the console that counts as an error.
type consoleLog struct {
	mu      sync.Mutex
	entries []consoleEntry
}

type consoleEntry struct {
	kind string // "console", "exception", "csp" or "log:<source>"
	text string
}

func (c *consoleLog) add(e consoleEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, e)
}

func (c *consoleLog) list() []consoleEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]consoleEntry(nil), c.entries...)
}

func (c *consoleLog) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = nil
}

// cspProbe makes every CSP violation a console error with a marker, so a
// violation is caught whether or not the browser logs it itself. Scripts
// added through the protocol are not subject to the page's CSP.
const cspProbe = `document.addEventListener("securitypolicyviolation", (e) => {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber);
});`

// newTab opens a tab in the browser and records its console errors, uncaught
// exceptions and CSP violations. At the end of the test, exceptions and CSP
// violations fail it; other errors are for the tests that ask.
func newTab(t *testing.T, browser context.Context, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{t: t, name: name, ctx: ctx, con: &consoleLog{}}
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			switch {
			case m.IsException():
				tb.con.add(consoleEntry{"exception", m.Text + " (" + m.URL + ")"})
			case strings.HasPrefix(m.Text, "CSP violation"):
				tb.con.add(consoleEntry{"csp", m.Text})
			case m.Type == chromedp.ConsoleError && strings.Contains(m.Text, "Content Security Policy"):
				tb.con.add(consoleEntry{"csp", m.Text})
			case m.Type == chromedp.ConsoleError && m.Source == "":
				tb.con.add(consoleEntry{"console", m.Text})
			case m.Type == chromedp.ConsoleError && m.Source == "security":
				tb.con.add(consoleEntry{"csp", m.Text})
			case m.Type == chromedp.ConsoleError:
				tb.con.add(consoleEntry{"log:" + m.Source, m.Text + " " + m.URL})
			}
		}
	}()
	t.Cleanup(func() {
		// A round trip first: console events the page sent before it have
		// reached the recorder by the time it answers. Then stop the
		// recorder and read what it has, so a late exception is not missed.
		rt, stop := context.WithTimeout(ctx, 5*time.Second)
		_, _ = chromedp.Run(rt, chromedp.Evaluate[int](`1`))
		stop()
		cancel()
		<-done
		for _, e := range tb.con.list() {
			if e.kind == "exception" || e.kind == "csp" {
				t.Errorf("%s tab: %s: %s", name, e.kind, e.text)
			}
		}
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspProbe}); err != nil {
		t.Fatalf("%s tab: add the CSP probe: %v", name, err)
	}
	return tb
}

const actionTimeout = 20 * time.Second

// do runs actions with a timeout, failing the test on error.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s tab: %s: %v\npage: %s", tb.name, what, err, tb.pageText())
	}
}

func (tb *tab) navigate(url string) {
	tb.t.Helper()
	tb.do("open "+url, chromedp.Navigate(url))
}

func (tb *tab) click(sel string) {
	tb.t.Helper()
	tb.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.do("type into "+sel, chromedp.SendKeys(chromedp.CSS(sel), text))
}

// clearField empties an input the way select-all and delete would, firing input.
func (tb *tab) clearField(sel string) {
	tb.t.Helper()
	tb.do("clear "+sel, chromedp.Evaluate[chromedp.Void](`(() => { const el = document.querySelector(`+js(sel)+`); el.value = ""; el.dispatchEvent(new Event("input", {bubbles: true})); })()`))
}

// eval runs a JavaScript expression and decodes its JSON value into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, actionTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("%s tab: evaluate %s: %v", tb.name, expr, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy.
func (tb *tab) waitFor(what, expr string) {
	tb.t.Helper()
	tb.waitForWithin(what, expr, 15*time.Second)
}

func (tb *tab) waitForWithin(what, expr string, limit time.Duration) {
	tb.t.Helper()
	deadline := time.Now().Add(limit)
	wrapped := fmt.Sprintf("(() => { try { return !!(%s); } catch (e) { return false; } })()", expr)
	for {
		ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](wrapped))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("%s tab: waited %v for %s (%s); last error %v\npage: %s", tb.name, limit, what, expr, err, tb.pageText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pageText is the start of the page's visible text, for failure messages.
func (tb *tab) pageText() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.body ? document.body.innerText : "")`))
	if err != nil {
		return "(unavailable: " + err.Error() + ")"
	}
	if len(s) > 3000 {
		s = s[:3000] + "…"
	}
	return s
}

// waitLive waits until the page's WebSocket has applied a snapshot.
func (tb *tab) waitLive() {
	tb.t.Helper()
	tb.waitFor("the live connection", `document.getElementById("live").dataset.state === "live"`)
}

// errors returns the console errors recorded so far.
func (tb *tab) errors() []consoleEntry { return tb.con.list() }

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
