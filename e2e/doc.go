// Package e2e drives the real dashboard binary with a real browser (Debian's
// Chromium through chromedp): the pages, the live WebSocket, the token
// prompt, login, reconnects, and screenshots of every page in both themes.
// HuggingFace is an httptest fake; nothing leaves the loopback interface.
//
// Without Chromium the tests skip, except when CI=true, where they fail.
// DASHBOARD_SCREENSHOTS=dir writes the screenshots there.
package e2e
