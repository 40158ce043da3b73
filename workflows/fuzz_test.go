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
		`{"nodes":[{"id":1,"type":"s","inputs":[{"name":"n","widget":{"name":"n"},"link":null}],"widgets_values":["a.pt"]}],"definitions":{"subgraphs":[{"id":"s","inputs":[{"name":"n"}],"nodes":[{"id":2,"type":"VAELoader","inputs":[{"name":"vae_name","widget":{"name":"vae_name"},"link":3}],"widgets_values":["b.pt"]}],"links":[{"id":3,"origin_id":-10,"origin_slot":0}]}]}}`,
		`{"nodes":[{"id":5,"type":"workflow>G","widgets_values":["a.pt"]}],"extra":{"groupNodes":{"G":{"nodes":[{"type":"VAELoader","widgets_values":["b.pt"]}]}}}}`,
		`{"client_id":"x","prompt":{"1":{"class_type":"VAELoader","inputs":{"vae_name":"a.pt"}}}}`,
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
