package server

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/gofiber/fiber/v2"

	"dashboard/downloader"
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

type workflowInstallBody struct {
	Name   string `json:"name"`
	Models []struct {
		Directory string `json:"directory"`
		Name      string `json:"name"`
		URL       string `json:"url"`
		Hash      string `json:"hash"`
	} `json:"models"`
}

// handleWorkflowInstall queues the models a workflow still needs as one
// download ("workflow:<name>").
func (s *Server) handleWorkflowInstall(c *fiber.Ctx) error {
	var b workflowInstallBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	files := make([]downloader.WorkflowFile, 0, len(b.Models))
	for _, m := range b.Models {
		files = append(files, downloader.WorkflowFile{Directory: m.Directory, Name: m.Name, URL: m.URL, SHA256: m.Hash})
	}
	d, err := s.cfg.Downloads.InstallWorkflow(c.UserContext(), b.Name, files)
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusAccepted).JSON(d)
}
