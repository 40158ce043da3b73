package server

import (
	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

// changesNothing are the POSTs that only check or sign in: a read-only
// dashboard answers them like any other.
var changesNothing = map[string]bool{
	"/api/login":                       true,
	"/api/logout":                      true,
	"/api/settings/hf-token/test":      true,
	"/api/settings/civitai-token/test": true,
	"/api/workflows/analyze":           true,
}

// refuseWhenReadOnly answers every state-changing API request of a
// read-only dashboard with 409 read_only, naming the dashboard that can
// make the change. It refuses by method rather than route by route, so a
// route added later is covered without anyone remembering to; the store
// refuses writes too, but a change may touch files before the database.
func (s *Server) refuseWhenReadOnly(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	if !isAPIPath(c.Path()) || changesNothing[c.Path()] {
		return c.Next()
	}
	if m := s.mode(); m.Mode == model.ModeReadOnly {
		return model.ReadOnlyError(m.WriterNode())
	}
	return c.Next()
}

// mode is this dashboard's mode now.
func (s *Server) mode() model.Mode {
	if s.cfg.Mode == nil {
		return model.Mode{Mode: model.ModeWriter}
	}
	return s.cfg.Mode()
}
