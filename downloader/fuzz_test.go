package downloader

import (
	"os"
	"path"
	"strings"
	"testing"
)

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4.8GB", "335MB", "1.2 GB", "9.31GB (9536MB)", "512KB", "123456", "~15GB", "2GiB", "", "-1", "1e400GB", "GB", ".", "9999999999999TB", "1.2.3GB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, exact, err := parseSize(s)
		if err != nil {
			if n != 0 || exact || err.Error() == "" {
				t.Fatalf("parseSize(%q) = %d, %v with error %v", s, n, exact, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("parseSize(%q) = %d, negative", s, n)
		}
	})
}

func FuzzParsePresets(f *testing.F) {
	seed, err := os.ReadFile("testdata/presets-seed.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	for _, s := range []string{
		"presets: {}\n",
		"presets:\n  A:\n    name: A\n    files:\n    - path: ../../etc/passwd\n      url: https://huggingface.co/a/b/resolve/main/x\n",
		"presets:\n  A:\n    files:\n    - path: /abs\n      url: https://huggingface.co/a/b/resolve/main/x\n",
		"presets:\n  A:\n    files:\n    - path: ok/x.bin\n",
		"presets:\n  A:\n    files:\n    - path: ok/x.bin\n      url: https://huggingface.co/a/b/blob/main/x\n      size: 4.8GB\n",
		"presets: [1, 2]\n", "presets:\n  A: 3\n", ":\n  - [", "presets:\n  A:\n    files: {}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := parsePresets(data)
		if err != nil {
			if !strings.Contains(err.Error(), "line") && !strings.Contains(err.Error(), "yaml") {
				t.Fatalf("parse error without a place: %v", err)
			}
			return
		}
		for id, p := range res.presets {
			for _, fl := range p.Files {
				clean := path.Clean(fl.Path)
				if fl.Path == "" || path.IsAbs(fl.Path) || clean == ".." || strings.HasPrefix(clean, "../") || strings.Contains(fl.Path, "\\") && strings.Contains(fl.Path, "..") {
					t.Fatalf("preset %s accepted an unsafe path %q", id, fl.Path)
				}
				if fl.URL == "" {
					t.Fatalf("preset %s accepted a file without a URL", id)
				}
				if fl.SizeBytes < 0 {
					t.Fatalf("preset %s has a negative size", id)
				}
			}
		}
		for _, pr := range res.problems {
			if pr == "" {
				t.Fatal("an empty problem message")
			}
		}
	})
}
