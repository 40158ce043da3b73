package workflows

// Model is one file a workflow needs, shaped as POST /api/workflows/analyze
// answers it.
type Model struct {
	Name      string `json:"name"`
	Directory string `json:"directory"`
	// Path is where the file is (when present: maybe in the alias folder)
	// or would go, relative to the models folder.
	Path    string   `json:"path"`
	Present bool     `json:"present"`
	Hash    *string  `json:"hash"`       // SHA-256 the workflow gives
	Size    *int64   `json:"size_bytes"` // from a preset that lists the file, when one does
	Sources []Source `json:"sources"`
}

// Source is where a missing file can come from.
type Source struct {
	Kind       string `json:"kind"` // SourcePreset or SourceURL
	PresetID   string `json:"preset_id,omitempty"`
	PresetName string `json:"preset_name,omitempty"`
	// URL is the workflow's own link, or the preset file's.
	URL string `json:"url,omitempty"`
}

// Kinds of Source.
const (
	SourcePreset = "preset"
	SourceURL    = "url"
)

// Known is a file one of the presets installs.
type Known struct {
	PresetID, PresetName string
	Path                 string // relative to the models folder, slash-separated
	URL                  string
	Size                 int64 // 0 when unknown
}

// Analyze says, for each file refs name, whether it is on disk (exists is
// asked about paths relative to the models folder, in the file's folder
// and its alias), and where it can come from: every preset that lists a
// file at that place, then the workflow's own URL.
func Analyze(refs []Ref, known []Known, exists func(rel string) bool) []Model {
	byPlace := map[string][]Known{}
	for _, k := range known {
		key := CanonicalPath(k.Path)
		byPlace[key] = append(byPlace[key], k)
	}
	out := make([]Model, 0, len(refs))
	for _, r := range refs {
		m := Model{Name: r.Name, Directory: r.Directory, Path: r.Path(), Sources: []Source{}}
		for _, dir := range Folders(r.Directory) {
			if p := dir + "/" + r.Name; exists(p) {
				m.Present, m.Path = true, p
				break
			}
		}
		if r.Hash != "" {
			h := r.Hash
			m.Hash = &h
		}
		// A name with subfolders is matched by its whole path.
		for _, k := range byPlace[CanonicalPath(r.Path())] {
			m.Sources = append(m.Sources, Source{Kind: SourcePreset, PresetID: k.PresetID, PresetName: k.PresetName, URL: k.URL})
			if m.Size == nil && k.Size > 0 {
				size := k.Size
				m.Size = &size
			}
		}
		if r.URL != "" {
			m.Sources = append(m.Sources, Source{Kind: SourceURL, URL: r.URL})
		}
		out = append(out, m)
	}
	return out
}
