// Package ui holds the dashboard's pages, styles and scripts, embedded in the
// binary, and the handler that serves them.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
)

//go:embed static
var static embed.FS

// pages maps the dashboard's page routes to their files.
var pages = map[string]string{
	"/":         "index.html",
	"/activity": "activity.html",
	"/settings": "settings.html",
	"/login":    "login.html",
}

// Handler serves the pages at their routes and every other file under its own
// name. Unknown paths fall through to the next handler (a 404).
func Handler() fiber.Handler {
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
		if name, ok := pages[p]; ok {
			if _, err := fs.Stat(root, name); err != nil {
				return c.Next()
			}
			c.Set(fiber.HeaderCacheControl, "no-cache")
			return filesystem.SendFile(c, http.FS(root), name)
		}
		if strings.HasSuffix(p, ".html") || path.Ext(p) == "" {
			return c.Next()
		}
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return files(c)
	}
}
