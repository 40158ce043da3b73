package downloader

import "os"

// landed tells Config.ModelFiles that f is in place. A file another preset
// sharing its path fetched meanwhile is told twice; the overview's next walk
// of the folder sets that right.
func (m *Manager) landed(f PresetFile) {
	if m.cfg.ModelFiles == nil {
		return
	}
	st, err := os.Stat(m.finalPath(f))
	if err != nil {
		return
	}
	m.cfg.ModelFiles.Added(f.Path, st.Size())
}
