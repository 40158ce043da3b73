package workflows

import (
	"os"
	"testing"

	"dashboard/model"
)

// Whatever is dropped on the dashboard, Parse answers with models or with
// invalid_workflow, never anything else, and never a path that leaves the
// models folder.
func FuzzParse(f *testing.F) {
	fix, err := os.ReadFile("testdata/01_get_started_text_to_image.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		string(fix),
		`{"nodes":[{"id":1,"type":"VAELoader","mode":0,"widgets_values":["ae.safetensors"]}]}`,
		`{"4":{"class_type":"CheckpointLoaderSimple","inputs":{"ckpt_name":"m.safetensors"}}}`,
		`{"nodes":[{"id":1,"type":"g"}],"definitions":{"subgraphs":[{"id":"g","nodes":[{"id":2,"type":"g"}]}]}}`,
		`{"nodes":[],"models":[{"name":"a/../../b","directory":"vae","url":"x"}]}`,
		"\x89PNG\r\n\x1a\n\x00\x00\x00\x05tEXtw\x00{}", `[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		refs, err := Parse(body)
		if err != nil {
			if model.ErrorCode(err) != model.CodeInvalidWorkflow || err.Error() == "" {
				t.Fatalf("Parse(%q) = %v", body, err)
			}
			return
		}
		for _, r := range refs {
			if _, _, err := cleanRef(r.Directory, r.Name); err != nil {
				t.Fatalf("Parse(%q) returned an unsafe path %q: %v", body, r.Path(), err)
			}
		}
	})
}
