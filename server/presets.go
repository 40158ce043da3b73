package server

import (
	"net/http"

	"github.com/gofiber/fiber/v2"
)

func (s *Server) handlePresetsList(c *fiber.Ctx) error {
	presets, loadErr := s.cfg.Downloads.Presets()
	var e *string
	if loadErr != "" {
		e = &loadErr
	}
	return c.JSON(fiber.Map{"presets": nonNil(presets), "error": e})
}

func (s *Server) handlePresetGet(c *fiber.Ctx) error {
	p, ok := s.cfg.Downloads.Preset(c.Params("id"))
	if !ok {
		return errorf(http.StatusNotFound, "not_found", "There is no preset %q.", c.Params("id"))
	}
	return c.JSON(p)
}

func (s *Server) handlePresetInstall(c *fiber.Ctx) error {
	d, err := s.cfg.Downloads.Install(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(d)
}
