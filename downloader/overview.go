package downloader

import "os"

// What the pod's overview and the download history page need from the
// downloader, kept apart from fetching.

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

// PresetName is the name presets.yaml gives preset id; false when there is
// no such preset. It reads nothing from disk.
func (m *Manager) PresetName(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.presets[id]
	if !ok {
		return "", false
	}
	return p.Name, true
}
