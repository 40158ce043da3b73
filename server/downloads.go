package server

import (
	"dashboard/model"
	"net/http"

	"github.com/gofiber/fiber/v2"
)

func (s *Server) handleDownloadsList(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"downloads": nonNil(s.cfg.Downloads.Downloads())})
}

func (s *Server) handleDownloadCancel(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	d, err := s.cfg.Downloads.Cancel(id)
	if err != nil {
		return err
	}
	return c.JSON(d)
}

func (s *Server) handleDownloadRetry(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	d, err := s.cfg.Downloads.Retry(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.Status(http.StatusAccepted).JSON(d)
}

func (s *Server) handleDownloadHistory(c *fiber.Ctx) error {
	limit, err := queryInt(c, "limit", 50, 1, maxPage)
	if err != nil {
		return err
	}
	before, err := queryInt(c, "before", 0, 1, 1<<62)
	if err != nil {
		return err
	}
	rows, err := s.cfg.Store.ListDownloads(c.UserContext(), before, int(limit))
	if err != nil {
		return err
	}
	for i := range rows {
		rows[i].PresetName = rows[i].PresetID
		if name, ok := s.cfg.Downloads.PresetName(rows[i].PresetID); ok && name != "" {
			rows[i].PresetName = name
		}
	}
	return c.JSON(fiber.Map{"history": nonNil(rows), "next_before": nextBefore(rows, int(limit), func(r model.DownloadRecord) int64 { return r.ID })})
}
