package server

import "github.com/gofiber/fiber/v2"

// handleSystem measures the pod now (a measurement under a second old is
// reused, so a script polling it cannot keep nvidia-smi busy).
func (s *Server) handleSystem(c *fiber.Ctx) error {
	return c.JSON(s.cfg.System.Snapshot(c.UserContext()))
}
