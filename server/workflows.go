package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gofiber/fiber/v2"

	"dashboard/workflows"
)

// handleWorkflowAnalyze reads a workflow (JSON in either format, or a PNG
// ComfyUI saved) and says which model files it needs, which are on disk,
// and where the missing ones can come from.
func (s *Server) handleWorkflowAnalyze(c *fiber.Ctx) error {
	refs, err := workflows.Parse(c.Body())
	if err != nil {
		return err
	}
	var known []workflows.Known
	for _, p := range s.cfg.Downloads.PresetList().Presets {
		for _, f := range p.Files {
			known = append(known, workflows.Known{PresetID: p.ID, PresetName: p.Name, Path: f.Path, URL: f.URL, Size: f.SizeBytes})
		}
	}
	models := workflows.Analyze(refs, known, s.modelExists)
	return c.JSON(fiber.Map{"models": models})
}

// modelExists says whether a regular file is at rel under the models folder.
func (s *Server) modelExists(rel string) bool {
	st, err := os.Stat(filepath.Join(s.cfg.ModelsDir, filepath.FromSlash(rel)))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("check a model file", "path", rel, "err", err)
	}
	return err == nil && st.Mode().IsRegular()
}
