package server

import (
	"bytes"
	"dashboard/model"
	"encoding/json"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

const maxPage = 500

func (s *Server) handleActivityList(c *fiber.Ctx) error {
	f := model.ActivityFilter{Type: model.ActivityType(c.Query("type")), Status: model.ActivityStatus(c.Query("status"))}
	if f.Type != "" {
		if msg := model.CheckActivityType(f.Type); msg != "" {
			return model.Errorf(model.CodeInvalidQuery, "The filter's %s.", msg)
		}
	}
	if f.Status != "" {
		if msg := model.CheckActivityStatus(f.Status); msg != "" {
			return model.Errorf(model.CodeInvalidQuery, "The filter's %s.", msg)
		}
	}
	limit, err := queryInt(c, "limit", 50, 1, maxPage)
	if err != nil {
		return err
	}
	if f.Before, err = queryInt(c, "before", 0, 1, 1<<62); err != nil {
		return err
	}
	f.Limit = int(limit)
	rows, err := s.cfg.Store.ListActivity(c.UserContext(), f)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"activity": nonNil(rows), "next_before": nextBefore(rows, int(limit), func(a model.Activity) int64 { return a.ID })})
}

type activityBody struct {
	Type     model.ActivityType   `json:"type"`
	Status   model.ActivityStatus `json:"status"`
	Title    string               `json:"title"`
	Subtitle string               `json:"subtitle"`
	Details  json.RawMessage      `json:"details"`
}

func (s *Server) handleActivityCreate(c *fiber.Ctx) error {
	var b activityBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	details := bytes.TrimSpace(b.Details)
	if bytes.Equal(details, []byte("null")) {
		details = nil
	}
	if len(details) > 0 && details[0] != '{' {
		return model.Errorf(model.CodeInvalidActivity, "Field \"details\" must be a JSON object or null.")
	}
	saved, err := s.cfg.Activity.Record(c.UserContext(), model.Activity{
		Type: b.Type, Status: b.Status, Title: b.Title, Subtitle: b.Subtitle, Details: details,
	})
	if err != nil {
		return err
	}
	return c.Status(http.StatusCreated).JSON(saved)
}

func (s *Server) handleActivityClear(c *fiber.Ctx) error {
	n, err := s.cfg.Activity.Clear(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"deleted": n})
}

// nextBefore is the cursor for the next page: the last id when the page was
// full, else nil (no more rows).
func nextBefore[T any](rows []T, limit int, id func(T) int64) *int64 {
	if len(rows) < limit || len(rows) == 0 {
		return nil
	}
	v := id(rows[len(rows)-1])
	return &v
}

func nonNil[T any](rows []T) []T {
	if rows == nil {
		return []T{}
	}
	return rows
}
