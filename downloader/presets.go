package downloader

import (
	"dashboard/model"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Preset is one entry of presets.yaml with its install state, shaped as the API
// sends it.
type Preset struct {
	ID           string       `json:"id"`
	Name         string       `json:"name"`
	Category     string       `json:"category"`
	Type         string       `json:"type"`
	Description  string       `json:"description"`
	DownloadSize string       `json:"download_size"`
	SizeBytes    int64        `json:"size_bytes"`
	Gated        bool         `json:"gated"`
	Status       string       `json:"status"`
	Files        []PresetFile `json:"files"`
}

// PresetFile is one file a preset installs.
type PresetFile struct {
	Path      string `json:"path"` // relative to the models folder, slash-separated
	URL       string `json:"url"`  // as written (huggingface.co pages rewritten to /resolve/)
	SizeBytes int64  `json:"size_bytes"`
	Installed bool   `json:"installed"`
	// Corrupt says the file in place is the preset's but a verify found
	// it does not match its checksum (Installed is then false).
	Corrupt bool `json:"corrupt"`

	// exact says SizeBytes came from a plain byte count, so an installed
	// file must have exactly that size; human sizes ("4.8GB") are only a
	// rough guide and are not compared.
	exact  bool
	sha256 string // lower-case hex, "" when the preset gives none
}

// Install states of a preset.
const (
	PresetInstalled   = "installed"
	PresetPartial     = "partial"
	PresetMissing     = "missing"
	PresetQueued      = string(model.DownloadQueued)
	PresetDownloading = string(model.DownloadRunning)
)

// presetsDoc is the shape of presets.yaml. Presets is kept as a node so each
// preset decodes on its own: one broken entry must not hide the others.
type presetsDoc struct {
	Presets yaml.Node `yaml:"presets"`
}

type rawPreset struct {
	Name         string    `yaml:"name"`
	Category     string    `yaml:"category"`
	Type         string    `yaml:"type"`
	Description  string    `yaml:"description"`
	DownloadSize yaml.Node `yaml:"download_size"`
	Gated        bool      `yaml:"gated"`
	Files        []rawFile `yaml:"files"`
}

type rawFile struct {
	Path   string    `yaml:"path"`
	URL    string    `yaml:"url"`
	Size   yaml.Node `yaml:"size"`
	SHA256 string    `yaml:"sha256"`
}

// parseResult is what one read of presets.yaml yields.
type parseResult struct {
	presets  map[string]Preset
	problems []string // per-preset refusals, each naming the preset
	warnings []string // accepted with a fix-up (e.g. /blob/ URLs)
}

// parsePresets reads the presets file format. A YAML syntax error fails the
// whole file (the error carries its line); problems with single presets are
// collected and those presets are left out.
func parsePresets(data []byte) (parseResult, error) {
	var doc presetsDoc
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return parseResult{}, fmt.Errorf("parse presets: %w", err)
	}
	res := parseResult{presets: map[string]Preset{}}
	n := &doc.Presets
	if n.Kind == 0 {
		return res, nil // no presets key: an empty but valid file
	}
	if n.Kind != yaml.MappingNode {
		return parseResult{}, fmt.Errorf("parse presets: line %d: presets must be a map keyed by preset id", n.Line)
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		id := strings.TrimSpace(key.Value)
		if id == "" {
			res.problems = append(res.problems, fmt.Sprintf("line %d: preset with an empty id refused", key.Line))
			continue
		}
		if why := badID(id); why != "" {
			res.problems = append(res.problems, fmt.Sprintf("preset %q (line %d) refused: %s; rename it", id, key.Line, why))
			continue
		}
		if first, dup := lines[id]; dup {
			res.problems = append(res.problems, fmt.Sprintf("preset %s (line %d): defined again, the one at line %d is used", id, key.Line, first))
			continue
		}
		lines[id] = key.Line
		p, warns, err := buildPreset(id, val)
		res.warnings = append(res.warnings, warns...)
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("preset %s (line %d) refused: %v", id, key.Line, err))
			continue
		}
		res.presets[id] = p
	}
	return res, nil
}

// badID says why a preset id cannot be used, or returns "". Any other id
// works end to end, spaces and '+' included: the pages escape it with
// encodeURIComponent and the API unescapes it.
func badID(id string) string {
	if id == "." || id == ".." {
		return "no URL can carry this id (every browser and HTTP client takes . and .. out of a path)"
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return "the id holds a control character (a line break or tab), which no URL or page can show"
		}
	}
	return ""
}

func buildPreset(id string, node *yaml.Node) (Preset, []string, error) {
	var raw rawPreset
	if err := node.Decode(&raw); err != nil {
		return Preset{}, nil, err
	}
	var warns []string
	p := Preset{
		ID:          id,
		Name:        strings.TrimSpace(raw.Name),
		Category:    strings.TrimSpace(raw.Category),
		Type:        strings.TrimSpace(raw.Type),
		Description: strings.TrimSpace(raw.Description),
		Gated:       raw.Gated,
		Files:       []PresetFile{},
	}
	if p.Name == "" {
		p.Name = id
	}
	if raw.DownloadSize.Kind == yaml.ScalarNode {
		p.DownloadSize = raw.DownloadSize.Value
	}
	if len(raw.Files) == 0 {
		return Preset{}, nil, errors.New("it lists no files")
	}
	seen := map[string]bool{}
	for i, rf := range raw.Files {
		rel, err := cleanRelPath(rf.Path)
		if err != nil {
			return Preset{}, nil, fmt.Errorf("file %d: %w", i+1, err)
		}
		u := strings.TrimSpace(rf.URL)
		if u == "" {
			return Preset{}, nil, fmt.Errorf("file %d (%s): no url", i+1, rel)
		}
		fixed, note, err := normalizeURL(u)
		if err != nil {
			return Preset{}, nil, fmt.Errorf("file %d (%s): %w", i+1, rel, err)
		}
		if note != "" {
			warns = append(warns, fmt.Sprintf("preset %s: %s", id, note))
		}
		f := PresetFile{Path: rel, URL: fixed}
		if rf.Size.Kind == yaml.ScalarNode && rf.Size.Value != "" {
			size, exact, err := parseSize(rf.Size.Value)
			if err != nil {
				return Preset{}, nil, fmt.Errorf("file %d (%s): %w", i+1, rel, err)
			}
			f.SizeBytes, f.exact = size, exact
		}
		if sum := strings.ToLower(strings.TrimSpace(rf.SHA256)); sum != "" {
			if !model.IsSHA256(sum) {
				return Preset{}, nil, fmt.Errorf("file %d (%s): sha256 must be 64 hex digits", i+1, rel)
			}
			f.sha256 = sum
		}
		// A preset listing one path twice would fetch it twice; keep the first.
		if seen[rel] {
			continue
		}
		seen[rel] = true
		p.Files = append(p.Files, f)
		p.SizeBytes += f.SizeBytes
	}
	if p.SizeBytes == 0 && p.DownloadSize != "" {
		if n, _, err := parseSize(p.DownloadSize); err == nil {
			p.SizeBytes = n
		}
	}
	return p, warns, nil
}

// cleanRelPath refuses paths that would write outside the models folder.
func cleanRelPath(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" {
		return "", errors.New("empty path")
	}
	if strings.ContainsRune(p, 0) {
		return "", errors.New("path contains a NUL byte")
	}
	// Backslashes would be separators on Windows and are never meant here.
	slashed := strings.ReplaceAll(p, `\`, "/")
	if path.IsAbs(slashed) || filepath.IsAbs(p) || filepath.VolumeName(p) != "" {
		return "", fmt.Errorf("path %q is absolute; paths are relative to the models folder", p)
	}
	for _, seg := range strings.Split(slashed, "/") {
		if seg == ".." {
			return "", fmt.Errorf("path %q climbs out of the models folder", p)
		}
	}
	clean := path.Clean(slashed)
	if clean == "." || strings.HasSuffix(slashed, "/") {
		return "", fmt.Errorf("path %q names a folder, not a file", p)
	}
	for _, suffix := range []string{partSuffix, stateSuffix, stateTmp} {
		if strings.HasSuffix(clean, suffix) {
			return "", fmt.Errorf("path %q ends in %s, which is reserved for files being downloaded", p, suffix)
		}
	}
	return clean, nil
}

// normalizeURL checks the URL and mends what people paste: a HuggingFace
// page link (…/blob/rev/file) becomes the download link (…/resolve/rev/file),
// which is what they mean; a Civitai link's token= query is dropped, since
// the Civitai token goes only in a header and a URL is shown in the API and
// the log. note says what was changed, "" when nothing was.
func normalizeURL(raw string) (string, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("bad url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", "", fmt.Errorf("url %q must be http or https", shownURL(raw))
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("url %q has no host", shownURL(raw))
	}
	if isCivitaiHost(u.Hostname()) {
		q := u.Query()
		if !q.Has("token") {
			return raw, "", nil
		}
		q.Del("token")
		u.RawQuery = q.Encode()
		return u.String(), fmt.Sprintf("the token in the query of %s is not used (save the Civitai token in Settings instead, where it is sent only to Civitai); the URL is used without it", shownURL(raw)), nil
	}
	if !isHFHost(u.Hostname()) {
		return raw, "", nil
	}
	segs := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
	// org/repo/blob/rev/file… ; datasets and spaces have a prefix segment.
	for i := 2; i < len(segs)-2 && i <= 3; i++ {
		if segs[i] == "blob" {
			segs[i] = "resolve"
			u.Path = "/" + strings.Join(segs, "/")
			u.RawPath = ""
			return u.String(), fmt.Sprintf("%s is a HuggingFace page URL, fetching %s instead", shownURL(raw), shownURL(u.String())), nil
		}
	}
	return raw, "", nil
}

// Size units. Decimal units follow what HuggingFace shows (4.8GB = 4.8×10^9
// bytes); binary units are accepted when spelt out (GiB = 2^30).
var sizeUnits = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// parseSize reads "4.8GB", "335MB", "1.2 GB", "9.31GB (9536MB)", "~15GB",
// "512KB" or a plain byte count. exact is true only for a plain byte count.
func parseSize(s string) (int64, bool, error) {
	orig := s
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '('); i >= 0 { // "9.31GB (9536MB)": the first figure counts
		s = strings.TrimSpace(s[:i])
	}
	s = strings.TrimLeft(s, "~≈ ")
	if s == "" {
		return 0, false, fmt.Errorf("size %q is empty", orig)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return 0, false, fmt.Errorf("size %q is negative", orig)
		}
		return n, true, nil
	}
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	num, err := strconv.ParseFloat(s[:end], 64)
	if err != nil {
		return 0, false, fmt.Errorf("size %q is not a number with a unit like 4.8GB", orig)
	}
	unit := strings.ToLower(strings.TrimSpace(s[end:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, false, fmt.Errorf("size %q has an unknown unit %q", orig, unit)
	}
	v := num * mult
	if v > math.MaxInt64/2 {
		return 0, false, fmt.Errorf("size %q is too large", orig)
	}
	return int64(math.Round(v)), false, nil
}

// sortPresets orders presets by category, then name, then id.
func sortPresets(ps []Preset) {
	slices.SortFunc(ps, func(a, b Preset) int {
		if c := strings.Compare(a.Category, b.Category); c != 0 {
			return c
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

//go:embed default-presets.yaml
var defaultPresets []byte

// writeDefaultPresets creates the presets file with a few well-known public
// models so a fresh pod has something to install. It writes through a
// temporary file so a crash never leaves half a file behind.
func writeDefaultPresets(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return fmt.Errorf("create presets folder: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".presets-*.yaml")
	if err != nil {
		return fmt.Errorf("create presets file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(defaultPresets); err != nil {
		tmp.Close()
		return fmt.Errorf("write presets file: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod presets file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync presets file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close presets file: %w", err)
	}
	// Link rather than rename so a file created meanwhile by someone else wins.
	if err := os.Link(tmp.Name(), file); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		if err := os.Rename(tmp.Name(), file); err != nil {
			return fmt.Errorf("place presets file: %w", err)
		}
	}
	return nil
}
