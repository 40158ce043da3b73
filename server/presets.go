package server

import (
	"dashboard/model"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

func (s *Server) handlePresetsList(c *fiber.Ctx) error {
	return c.JSON(s.cfg.Downloads.PresetList())
}

func (s *Server) handlePresetGet(c *fiber.Ctx) error {
	p, ok := s.cfg.Downloads.Preset(c.Params("id"))
	if !ok {
		return model.Errorf(model.CodeNotFound, "There is no preset %q.", c.Params("id"))
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
