package server

import (
	"bytes"
	"dashboard/model"
	"encoding/json"
	"fmt"

	"github.com/gofiber/fiber/v2"

	"dashboard/settings"
)

func (s *Server) handleSettingsGet(c *fiber.Ctx) error {
	v, err := s.cfg.Settings.View(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(v)
}

// handleSettingsPatch changes theme, retention and notifications. Keys are
// checked one by one so the message can name the key that is wrong.
func (s *Server) handleSettingsPatch(c *fiber.Ctx) error {
	var raw map[string]json.RawMessage
	if err := decodeJSON(c, &raw); err != nil {
		return err
	}
	var p settings.Patch
	for k, v := range raw {
		var err error
		switch k {
		case model.SettingTheme:
			p.Theme = new(string)
			err = json.Unmarshal(v, p.Theme)
		case model.SettingRetentionDays:
			p.RetentionDays = new(int)
			err = json.Unmarshal(v, p.RetentionDays)
		case model.SettingNotifications:
			p.Notifications = new(bool)
			err = json.Unmarshal(v, p.Notifications)
		case model.SettingHFToken:
			return model.Errorf(model.CodeInvalidSetting, "The HuggingFace token is not changed here: use POST /api/settings/hf-token, which checks it first.")
		case model.SettingCivitaiToken:
			return model.Errorf(model.CodeInvalidSetting, "The Civitai token is not changed here: use POST /api/settings/civitai-token, which checks it first.")
		default:
			return model.Errorf(model.CodeInvalidSetting, "Unknown setting %q: only theme, activity_retention_days and notifications can be changed.", k)
		}
		if err != nil || bytes.Equal(v, []byte("null")) {
			want := fmt.Sprintf("%q or %q", model.ThemeDark, model.ThemeLight)
			switch k {
			case model.SettingRetentionDays:
				want = "a whole number of days"
			case model.SettingNotifications:
				want = "true or false"
			}
			return model.Errorf(model.CodeInvalidSetting, "Setting %q must be %s.", k, want)
		}
	}
	v, err := s.cfg.Settings.Update(c.UserContext(), p)
	if err != nil {
		return err
	}
	return c.JSON(v)
}

type tokenBody struct {
	Token string `json:"token"`
}

// The token routes are the same for every service: POST saves a token its
// service accepts, POST …/test checks one, DELETE forgets the saved one.

func (s *Server) handleTokenSave(kind settings.TokenKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var b tokenBody
		if err := decodeJSON(c, &b); err != nil {
			return err
		}
		v, err := s.cfg.Settings.SaveToken(c.UserContext(), kind, b.Token)
		if err != nil {
			return err
		}
		return c.JSON(v)
	}
}

// handleTokenTest tests the token in the body, or the current one when the
// body is empty.
func (s *Server) handleTokenTest(kind settings.TokenKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		var b tokenBody
		if len(bytes.TrimSpace(c.Body())) > 0 {
			if err := decodeJSON(c, &b); err != nil {
				return err
			}
		}
		check, err := s.cfg.Settings.TestToken(c.UserContext(), kind, b.Token)
		if err != nil {
			return err
		}
		return c.JSON(check)
	}
}

func (s *Server) handleTokenDelete(kind settings.TokenKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
		v, err := s.cfg.Settings.DeleteToken(c.UserContext(), kind)
		if err != nil {
			return err
		}
		return c.JSON(v)
	}
}
