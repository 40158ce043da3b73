package server

import (
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"dashboard/model"
	"dashboard/settings"
)

// routes lists every route of the dashboard.
func (s *Server) routes() {
	a := s.app
	a.Use(recover.New(recover.Config{EnableStackTrace: true, StackTraceHandler: s.logPanic}))
	a.Use(s.logRequests)
	a.Use(s.checkHost)
	a.Use(securityHeaders)
	a.Use(s.crossSite)
	a.Use(s.requireLogin)
	a.Use(s.refuseWhenReadOnly)

	a.Post("/api/login", s.handleLogin)
	a.Post("/api/logout", s.handleLogout)

	a.Get("/api/health", s.handleHealth)
	a.Get("/api/system", s.handleSystem)

	a.Get("/api/settings", s.handleSettingsGet)
	a.Patch("/api/settings", s.handleSettingsPatch)
	a.Post("/api/settings/hf-token", s.handleTokenSave(settings.HuggingFace))
	a.Post("/api/settings/hf-token/test", s.handleTokenTest(settings.HuggingFace))
	a.Delete("/api/settings/hf-token", s.handleTokenDelete(settings.HuggingFace))
	a.Post("/api/settings/civitai-token", s.handleTokenSave(settings.Civitai))
	a.Post("/api/settings/civitai-token/test", s.handleTokenTest(settings.Civitai))
	a.Delete("/api/settings/civitai-token", s.handleTokenDelete(settings.Civitai))

	a.Get("/api/activity", s.handleActivityList)
	a.Post("/api/activity", s.handleActivityCreate)
	a.Post("/api/activity/clear", s.handleActivityClear)

	a.Get("/api/presets", s.handlePresetsList)
	a.Get("/api/presets/:id", s.handlePresetGet)
	a.Post("/api/presets/:id/install", s.handlePresetInstall)
	a.Post("/api/presets/:id/uninstall", s.handlePresetUninstall)
	a.Post("/api/presets/:id/verify", s.handlePresetVerify)

	a.Post("/api/workflows/analyze", s.handleWorkflowAnalyze)
	a.Post("/api/workflows/install", s.handleWorkflowInstall)

	a.Get("/api/downloads", s.handleDownloadsList)
	a.Get("/api/downloads/history", s.handleDownloadHistory)
	a.Post("/api/downloads/:id/cancel", s.handleDownloadCancel)
	a.Post("/api/downloads/:id/retry", s.handleDownloadRetry)

	a.Get("/ws", s.checkOrigin, s.admitWS, s.handleWS())

	// Everything else is a page or a static file; /api and /ws paths fall
	// through to Fiber's own answer, 405 when another method has the path,
	// else 404.
	if s.cfg.UI != nil {
		a.Use(func(c *fiber.Ctx) error {
			if isAPIPath(c.Path()) {
				return c.Next()
			}
			return s.cfg.UI(c)
		})
	}
}

// isAPIPath reports whether p belongs to the API or the WebSocket rather than
// to the pages.
func isAPIPath(p string) bool {
	return p == "/api" || strings.HasPrefix(p, "/api/") || p == "/ws" || strings.HasPrefix(p, "/ws/")
}

// health is GET /api/health's answer.
type health struct {
	Status  string         `json:"status"` // "ok" or "degraded"
	Version string         `json:"version"`
	DB      model.DBState  `json:"db"`
	Mode    model.ModeName `json:"mode"`
	Writer  *string        `json:"writer"`
}

// handleHealth answers 503 when the database is not ok: unreachable, on a
// full disk, or deleted or replaced under the dashboard.
func (s *Server) handleHealth(c *fiber.Ctx) error {
	h := health{Status: "ok", Version: s.cfg.Version}
	var err error
	if h.DB, err = s.cfg.Store.Health(c.UserContext()); h.DB != model.DBOK {
		s.log.Warn("health check: database not ok", "db", h.DB, "err", err)
		h.Status = "degraded"
		c.Status(fiber.StatusServiceUnavailable)
	}
	m := s.mode()
	h.Mode, h.Writer = m.Mode, m.Writer
	return c.JSON(h)
}

// logRequests logs every request once it has been answered.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	status := c.Response().StatusCode()
	if err != nil {
		// The error handler has not run yet; ask it what the status will be.
		status, _ = s.classify(c, err)
	}
	level := slogLevelFor(c.Path(), status)
	s.log.Log(c.UserContext(), level, "http request",
		"method", c.Method(), "path", c.Path(), "status", status,
		"duration_ms", time.Since(start).Milliseconds(), "ip", c.IP())
	return err
}

func (s *Server) logPanic(c *fiber.Ctx, e any) {
	s.log.Error("panic in handler", "method", c.Method(), "path", c.Path(), "panic", e)
}
