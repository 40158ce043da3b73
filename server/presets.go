package server

import (
	"net/http"
	"net/url"

	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

func (s *Server) handlePresetsList(c *fiber.Ctx) error {
	return c.JSON(s.cfg.Downloads.PresetList())
}

func (s *Server) handlePresetGet(c *fiber.Ctx) error {
	id := presetID(c)
	p, ok := s.cfg.Downloads.Preset(id)
	if !ok {
		return model.Errorf(model.CodeNotFound, "There is no preset %q.", id)
	}
	return c.JSON(p)
}

func (s *Server) handlePresetInstall(c *fiber.Ctx) error {
	d, err := s.cfg.Downloads.Install(c.UserContext(), presetID(c))
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(d)
}

// handlePresetUninstall removes the preset's files that no other preset
// has installed; ?dry_run=1 only says what would go.
func (s *Server) handlePresetUninstall(c *fiber.Ctx) error {
	dry, err := queryBool(c, "dry_run")
	if err != nil {
		return err
	}
	res, err := s.cfg.Downloads.Uninstall(c.UserContext(), presetID(c), dry)
	if err != nil {
		return err
	}
	return c.JSON(res)
}

func (s *Server) handlePresetVerify(c *fiber.Ctx) error {
	d, err := s.cfg.Downloads.Verify(c.UserContext(), presetID(c))
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(d)
}

// presetID is the {id} of the path, unescaped: the router matches the path
// as sent, so "MY MODEL" arrives as "MY%20MODEL" (the pages escape ids with
// encodeURIComponent). A malformed escape stays as it is and names no preset.
func presetID(c *fiber.Ctx) string {
	raw := c.Params("id")
	if id, err := url.PathUnescape(raw); err == nil {
		return id
	}
	return raw
}
