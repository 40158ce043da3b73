package server

import (
	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

type loginBody struct {
	Password string `json:"password"`
}

// handleLogin checks the password and starts a session.
func (s *Server) handleLogin(c *fiber.Ctx) error {
	if s.guard == nil {
		return c.JSON(fiber.Map{"ok": true, "password_required": false})
	}
	client := s.clientKey(c)
	if locked, wait := s.guard.lockout.locked(client); locked {
		return tooMany(c, wait)
	}
	var b loginBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if !s.guard.matches(b.Password) {
		s.wrongPassword(client, "wrong password at login")
		return model.Errorf(model.CodeWrongPassword, "That password is not right.")
	}
	s.guard.lockout.succeed(client)
	s.guard.sessions.start(c)
	s.log.Info("logged in", "client", client)
	return c.JSON(fiber.Map{"ok": true, "password_required": true})
}

// handleLogout ends the session: a logged-in browser's logout replaces the
// signing key, so every copy of every session cookie stops working.
func (s *Server) handleLogout(c *fiber.Ctx) error {
	if s.guard != nil && s.guard.sessions.valid(c) {
		key, err := NewSessionKey(c.UserContext(), s.cfg.Store)
		if err != nil {
			return err
		}
		s.guard.sessions.rotate(key)
		s.log.Info("logged out; every session ended", "client", s.clientKey(c))
	}
	endSession(c)
	return c.JSON(fiber.Map{"ok": true})
}
