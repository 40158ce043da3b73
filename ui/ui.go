// Package ui holds the dashboard's pages, styles and scripts, embedded in the
// binary, and the handler that serves them.
//
// The pages share their head and top bar: each file in pages/ holds only its
// <main>, and layout.html wraps it. They are rendered once, when the handler
// is made, so a page arrives whole (no header filled in by a script, no
// flash) and there is still no build step.
package ui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
)

//go:embed static
var static embed.FS

//go:embed pages
var pageFiles embed.FS

// Limits are the ranges the pages' forms check before sending, given by the
// server so they agree with what it accepts.
type Limits struct {
	MinRetentionDays int
	MaxRetentionDays int
}

// page is one page of the dashboard.
type page struct {
	Route  string
	File   string // in pages/
	Title  string
	Script string // its module in static/js
	Nav    string // the top bar entry it is; "" for a page without the bar
}

// pages are the dashboard's pages, in the top bar's order.
var pages = []page{
	{Route: "/", File: "home.html", Title: "Home", Script: "home.js", Nav: "Home"},
	{Route: "/activity", File: "activity.html", Title: "Activity", Script: "activity.js", Nav: "Activity"},
	{Route: "/history", File: "history.html", Title: "Download history", Script: "history.js", Nav: "History"},
	{Route: "/settings", File: "settings.html", Title: "Settings", Script: "settings.js", Nav: "Settings"},
	{Route: "/login", File: "login.html", Title: "Log in", Script: "login.js"},
}

type navItem struct {
	Href, Label string
	Current     bool
}

// pageData is what layout.html and a page see.
type pageData struct {
	page
	Bare   bool // no top bar (the login page)
	Nav    []navItem
	Limits Limits
}

// render makes every page's HTML.
func render(l Limits) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, p := range pages {
		t, err := template.ParseFS(pageFiles, "pages/layout.html", "pages/"+p.File)
		if err != nil {
			return nil, fmt.Errorf("parse page %s: %w", p.File, err)
		}
		data := pageData{page: p, Bare: p.Nav == "", Limits: l}
		for _, q := range pages {
			if q.Nav != "" {
				data.Nav = append(data.Nav, navItem{Href: q.Route, Label: q.Nav, Current: q.Route == p.Route})
			}
		}
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, "layout", data); err != nil {
			return nil, fmt.Errorf("render page %s: %w", p.File, err)
		}
		out[p.Route] = b.Bytes()
	}
	return out, nil
}

// Handler serves the pages at their routes and every other file under its own
// name. Unknown paths fall through to the next handler (a 404).
func Handler(l Limits) fiber.Handler {
	html, err := render(l)
	if err != nil {
		panic(err) // the embedded templates are ours: a test catches this
	}
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed directive guarantees the folder
	}
	files := filesystem.New(filesystem.Config{Root: http.FS(root), MaxAge: 0})
	return func(c *fiber.Ctx) error {
		if c.Method() != fiber.MethodGet && c.Method() != fiber.MethodHead {
			return c.Next()
		}
		p := strings.TrimSuffix(c.Path(), "/")
		if p == "" {
			p = "/"
		}
		if body, ok := html[p]; ok {
			c.Set(fiber.HeaderCacheControl, "no-cache")
			c.Type("html", "utf-8")
			return c.Send(body)
		}
		if strings.HasSuffix(p, ".html") || path.Ext(p) == "" {
			return c.Next()
		}
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return files(c)
	}
}
