package downloader

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in    string
		want  int64
		exact bool
		bad   bool
	}{
		{in: "4.8GB", want: 4_800_000_000},
		{in: "335MB", want: 335_000_000},
		{in: "1.2 GB", want: 1_200_000_000},
		{in: "9.31GB (9536MB)", want: 9_310_000_000},
		{in: "512KB", want: 512_000},
		{in: "~15GB", want: 15_000_000_000},
		{in: "2gb", want: 2_000_000_000},
		{in: "1GiB", want: 1 << 30},
		{in: "100MiB", want: 100 << 20},
		{in: "1.5T", want: 1_500_000_000_000},
		{in: "123456789", want: 123456789, exact: true},
		{in: "0", want: 0, exact: true},
		{in: "12 B", want: 12},
		{in: "", bad: true},
		{in: "big", bad: true},
		{in: "4.8XB", bad: true},
		{in: "-5", bad: true},
		{in: "1..2GB", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, exact, err := parseSize(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("parseSize(%q) = %d, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseSize(%q): %v", tt.in, err)
			}
			if got != tt.want || exact != tt.exact {
				t.Errorf("parseSize(%q) = %d exact=%v, want %d exact=%v", tt.in, got, exact, tt.want, tt.exact)
			}
		})
	}
}

func TestCleanRelPath(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "checkpoints/a.safetensors", want: "checkpoints/a.safetensors"},
		{in: "./vae//b.pt", want: "vae/b.pt"},
		{in: "/etc/passwd", bad: true},
		{in: "../outside.bin", bad: true},
		{in: "loras/../../x", bad: true},
		{in: `loras\..\..\x`, bad: true},
		{in: "", bad: true},
		{in: "checkpoints/", bad: true},
		{in: "x.part", bad: true},
		{in: "x.part.state", bad: true},
		{in: "a/x.part.state.tmp", bad: true},
	}
	for _, tt := range tests {
		got, err := cleanRelPath(tt.in)
		if tt.bad != (err != nil) || (!tt.bad && got != tt.want) {
			t.Errorf("cleanRelPath(%q) = %q, %v; want %q bad=%v", tt.in, got, err, tt.want, tt.bad)
		}
	}
}

func TestNormalizeURL(t *testing.T) {
	tests := []struct {
		in, want string
		changed  bool
		bad      bool
	}{
		{in: "https://huggingface.co/o/r/blob/main/f.safetensors", want: "https://huggingface.co/o/r/resolve/main/f.safetensors", changed: true},
		{in: "https://huggingface.co/o/r/resolve/main/blob/f", want: "https://huggingface.co/o/r/resolve/main/blob/f"},
		{in: "https://huggingface.co/datasets/o/r/blob/main/d/f.bin", want: "https://huggingface.co/datasets/o/r/resolve/main/d/f.bin", changed: true},
		{in: "https://example.com/o/r/blob/main/f", want: "https://example.com/o/r/blob/main/f"},
		{in: "ftp://example.com/f", bad: true},
		{in: "https:///nohost", bad: true},
		{in: "https://civitai.com/api/download/models/12345?type=Model&format=SafeTensor", want: "https://civitai.com/api/download/models/12345?type=Model&format=SafeTensor"},
		{in: "https://civitai.com/api/download/models/12345?token=abc123secret&type=Model", want: "https://civitai.com/api/download/models/12345?type=Model", changed: true},
		{in: "https://www.civitai.red/api/download/models/7?token=abc123secret", want: "https://www.civitai.red/api/download/models/7", changed: true},
		{in: "https://example.com/f?token=kept", want: "https://example.com/f?token=kept"},
	}
	for _, tt := range tests {
		got, note, err := normalizeURL(tt.in)
		changed := note != ""
		if strings.Contains(note, "abc123secret") {
			t.Errorf("normalizeURL(%q) shows the token in its note: %s", tt.in, note)
		}
		if tt.bad != (err != nil) || got != tt.want || changed != tt.changed {
			t.Errorf("normalizeURL(%q) = %q, %v, %v; want %q, %v, bad=%v", tt.in, got, changed, err, tt.want, tt.changed, tt.bad)
		}
	}
}

func TestModelPage(t *testing.T) {
	tests := map[string]string{
		"https://huggingface.co/black-forest-labs/FLUX.1-dev/resolve/main/flux1-dev.safetensors": "https://huggingface.co/black-forest-labs/FLUX.1-dev",
		"https://huggingface.co/datasets/o/r/resolve/main/x":                                     "https://huggingface.co/datasets/o/r",
		"https://example.com/o/r/x": "",
	}
	for in, want := range tests {
		if got := modelPage(in); got != want {
			t.Errorf("modelPage(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in              string
		start, end, tot int64
		ok              bool
	}{
		{"bytes 100-199/200", 100, 199, 200, true},
		{"bytes */500", -1, -1, 500, true},
		{"bytes 0-0/1", 0, 0, 0 + 1, true},
		{"bytes 1-2/*", 1, 2, -1, true},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes 5-4/9", 0, 0, 0, false},
		{"bytes -1-4/9", 0, 0, 0, false},
		{"bytes 0-4/x", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		s, e, n, ok := parseContentRange(tt.in)
		if ok != tt.ok || (ok && (s != tt.start || e != tt.end || n != tt.tot)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tt.in, s, e, n, ok)
		}
	}
}

func TestHexTag(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	tests := map[string]string{
		`"` + sum + `"`:                     sum,
		sum:                                 sum,
		`W/"` + strings.ToUpper(sum) + `"`:  sum,
		`"abc"`:                             "",
		`"` + strings.Repeat("z", 64) + `"`: "",
		`"` + strings.Repeat("a", 40) + `"`: "",
	}
	for in, want := range tests {
		if got := hexTag(in); got != want {
			t.Errorf("hexTag(%q) = %q, want %q", in, got, want)
		}
	}
}

// The presets file the pods already have must load as it is.
func TestSeedPresetsLoad(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "presets-seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parsePresets(data)
	if err != nil {
		t.Fatalf("parse seed: %v", err)
	}
	if len(res.problems) != 0 {
		t.Errorf("problems: %v", res.problems)
	}
	if len(res.presets) != 56 {
		t.Errorf("got %d presets, want 56", len(res.presets))
	}
	files, blobs := 0, 0
	for id, p := range res.presets {
		if p.SizeBytes <= 0 {
			t.Errorf("preset %s has size %d", id, p.SizeBytes)
		}
		if p.Name == "" || p.Category == "" {
			t.Errorf("preset %s lacks name or category: %+v", id, p)
		}
		for _, f := range p.Files {
			files++
			if f.SizeBytes <= 0 {
				t.Errorf("preset %s file %s has size %d", id, f.Path, f.SizeBytes)
			}
			if strings.Contains(f.URL, "/blob/") {
				blobs++
			}
			if !strings.HasPrefix(f.URL, "https://huggingface.co/") {
				t.Errorf("preset %s file %s url %s", id, f.Path, f.URL)
			}
		}
	}
	if files != 183 {
		t.Errorf("got %d files, want 183", files)
	}
	if blobs != 0 {
		t.Errorf("%d /blob/ urls were not rewritten", blobs)
	}
	if len(res.warnings) == 0 {
		t.Error("the seed's /blob/ urls produced no warning")
	}
	// Spot-check one preset against the file.
	p := res.presets["LTX_VIDEO_T2V"]
	if p.DownloadSize != "14.5GB" || len(p.Files) != 4 || p.Files[0].SizeBytes != 4_800_000_000 {
		t.Errorf("LTX_VIDEO_T2V = %+v", p)
	}
	if p.SizeBytes != (4.8+4.9+2.3+2.5)*1e9 {
		t.Errorf("LTX_VIDEO_T2V size %d", p.SizeBytes)
	}
}

func TestParsePresetsRefusesBadEntries(t *testing.T) {
	yml := `
metadata: {version: 1}
presets:
  GOOD:
    name: Good
    category: Image Generation
    files:
    - path: checkpoints/good.safetensors
      url: https://huggingface.co/o/r/resolve/main/good.safetensors
      size: 1GB
      sha256: ` + strings.Repeat("0", 64) + `
    tags: [a, b]
    use_case: anything
  ABSOLUTE:
    name: Absolute
    files:
    - path: /etc/evil
      url: https://huggingface.co/o/r/resolve/main/x
  CLIMBER:
    name: Climber
    files:
    - path: loras/../../../root/.ssh/authorized_keys
      url: https://huggingface.co/o/r/resolve/main/x
  NOURL:
    name: No URL
    files:
    - path: vae/x.safetensors
  BADSIZE:
    files:
    - path: vae/y.safetensors
      url: https://huggingface.co/o/r/resolve/main/y
      size: lots
  NOFILES:
    name: Nothing
  DUPFILE:
    files:
    - path: a/b.bin
      url: https://example.com/b.bin
      size: 10
    - path: a/b.bin
      url: https://example.com/b.bin
      size: 10
`
	res, err := parsePresets([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.presets) != 2 {
		t.Errorf("kept %d presets, want GOOD and DUPFILE", len(res.presets))
	}
	g, ok := res.presets["GOOD"]
	if !ok || g.Files[0].sha256 != strings.Repeat("0", 64) || g.SizeBytes != 1e9 {
		t.Errorf("GOOD = %+v", g)
	}
	if d := res.presets["DUPFILE"]; len(d.Files) != 1 || d.SizeBytes != 10 || !d.Files[0].exact || d.Name != "DUPFILE" {
		t.Errorf("DUPFILE = %+v", d)
	}
	all := strings.Join(res.problems, "\n")
	for _, want := range []string{"ABSOLUTE", "absolute", "CLIMBER", "climbs out", "NOURL", "no url", "BADSIZE", "NOFILES"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
}

func TestParsePresetsSyntaxErrorHasLine(t *testing.T) {
	_, err := parsePresets([]byte("presets:\n  A:\n    name: x\n   bad: [\n"))
	if err == nil || !strings.Contains(err.Error(), "line ") {
		t.Fatalf("err = %v, want one naming a line", err)
	}
}

func TestDefaultPresetsParse(t *testing.T) {
	res, err := parsePresets(defaultPresets)
	if err != nil || len(res.problems) != 0 {
		t.Fatalf("default presets: %v %v", err, res.problems)
	}
	if len(res.presets) < 4 || !res.presets["FLUX1_DEV"].Gated {
		t.Errorf("default presets = %d, FLUX1_DEV gated = %v", len(res.presets), res.presets["FLUX1_DEV"].Gated)
	}
	for id, p := range res.presets {
		if p.SizeBytes <= 0 {
			t.Errorf("%s has no size", id)
		}
	}
}

// Ids are accepted as written, spaces and '+' included (the API unescapes
// them), except those no URL can carry: "." and ".." are taken out of the
// path by every browser and HTTP client, and control characters cannot be
// typed or shown.
func TestParsePresetsRefusesIDsNoURLCanCarry(t *testing.T) {
	file := "\n    files:\n    - path: a/%d.bin\n      url: https://example.com/%d.bin\n"
	var yml strings.Builder
	yml.WriteString("presets:\n")
	ids := []string{`"MY MODEL"`, `"SD+XL"`, `"."`, `".."`, `"LINE\nBREAK"`, `"TAB\tID"`}
	for i, id := range ids {
		yml.WriteString("  " + id + ":" + strings.ReplaceAll(file, "%d", string(rune('a'+i))))
	}
	res, err := parsePresets([]byte(yml.String()))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res.presets["MY MODEL"]; !ok {
		t.Error("MY MODEL refused")
	}
	if _, ok := res.presets["SD+XL"]; !ok {
		t.Error("SD+XL refused")
	}
	if len(res.presets) != 2 {
		t.Errorf("kept %d presets, want 2: %v", len(res.presets), res.presets)
	}
	all := strings.Join(res.problems, "\n")
	for _, want := range []string{`preset "." `, `preset ".." `, `"LINE\nBREAK"`, `"TAB\tID"`, "URL"} {
		if !strings.Contains(all, want) {
			t.Errorf("problems lack %q:\n%s", want, all)
		}
	}
}
