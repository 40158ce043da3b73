package workflows

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"dashboard/model"
)

func fixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/01_get_started_text_to_image.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const zImage = "https://huggingface.co/Comfy-Org/z_image_turbo/resolve/main/split_files/"

// The real template: three loaders inside a subgraph, each declaring where
// its model comes from; the bypassed node and the note add nothing.
func TestRealTemplate(t *testing.T) {
	refs, err := Parse(fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Directory: "text_encoders", Name: "qwen_3_4b.safetensors", URL: zImage + "text_encoders/qwen_3_4b.safetensors"},
		{Directory: "vae", Name: "ae.safetensors", URL: zImage + "vae/ae.safetensors"},
		{Directory: "diffusion_models", Name: "z_image_turbo_bf16.safetensors", URL: zImage + "diffusion_models/z_image_turbo_bf16.safetensors"},
	}
	if !reflect.DeepEqual(refs, want) {
		t.Fatalf("refs =\n%+v\nwant\n%+v", refs, want)
	}
}

// The same template with its subgraph instance bypassed or muted needs
// nothing: the loaders are all inside the subgraph.
func TestBypassedSubgraphNeedsNothing(t *testing.T) {
	for _, mode := range []int{modeMuted, modeBypassed} {
		var wf map[string]any
		if err := json.Unmarshal(fixture(t), &wf); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, n := range wf["nodes"].([]any) {
			if node := n.(map[string]any); node["type"] == "ef10a538-17cf-46fb-930c-5460c4cf7f0e" {
				node["mode"], found = mode, true
			}
		}
		if !found {
			t.Fatal("the fixture's subgraph instance was not found")
		}
		raw, _ := json.Marshal(wf)
		refs, err := Parse(raw)
		if err != nil || len(refs) != 0 {
			t.Fatalf("mode %d: refs = %+v, err = %v", mode, refs, err)
		}
	}
}

func TestUIFormat(t *testing.T) {
	tests := []struct {
		name string
		wf   string
		want []Ref
	}{
		{"loader widgets by position", `{"nodes":[
			{"id":1,"type":"CheckpointLoaderSimple","mode":0,"widgets_values":["sd_xl_base_1.0.safetensors"]},
			{"id":2,"type":"LoraLoader","mode":0,"widgets_values":["detail.safetensors",1,1]},
			{"id":3,"type":"DualCLIPLoader","mode":0,"widgets_values":["clip_l.safetensors","t5xxl_fp16.safetensors","flux","default"]},
			{"id":4,"type":"KSampler","mode":0,"widgets_values":[1,"randomize",20,8,"euler","normal",1]}]}`,
			[]Ref{{Directory: "checkpoints", Name: "sd_xl_base_1.0.safetensors"}, {Directory: "loras", Name: "detail.safetensors"},
				{Directory: "text_encoders", Name: "clip_l.safetensors"}, {Directory: "text_encoders", Name: "t5xxl_fp16.safetensors"}}},
		{"muted and bypassed nodes need nothing", `{"nodes":[
			{"id":1,"type":"VAELoader","mode":2,"widgets_values":["muted.safetensors"]},
			{"id":2,"type":"VAELoader","mode":4,"widgets_values":["bypassed.safetensors"],"properties":{"models":[{"name":"bypassed.safetensors","url":"https://x/y","directory":"vae"}]}},
			{"id":3,"type":"VAELoader","mode":0,"widgets_values":["kept.safetensors"]}]}`,
			[]Ref{{Directory: "vae", Name: "kept.safetensors"}}},
		{"duplicates count once, keeping the url and hash", `{"nodes":[
			{"id":1,"type":"VAELoader","widgets_values":["ae.safetensors"]},
			{"id":2,"type":"VAELoader","widgets_values":["ae.safetensors"],"properties":{"models":[{"name":"ae.safetensors","url":"https://h/ae","directory":"vae","hash":"` + strings.Repeat("AB", 32) + `","hash_type":"SHA256"}]}}]}`,
			[]Ref{{Directory: "vae", Name: "ae.safetensors", URL: "https://h/ae", Hash: strings.Repeat("ab", 32)}}},
		{"alias folders are one folder", `{"nodes":[
			{"id":1,"type":"UNETLoader","widgets_values":["flux1-dev.safetensors","default"],"properties":{"models":[{"name":"flux1-dev.safetensors","url":"https://h/f","directory":"unet"}]}},
			{"id":2,"type":"CLIPLoader","widgets_values":["t5.safetensors","flux"],"properties":{"models":[{"name":"t5.safetensors","url":"https://h/t5","directory":"clip"}]}}]}`,
			[]Ref{{Directory: "unet", Name: "flux1-dev.safetensors", URL: "https://h/f"}, {Directory: "clip", Name: "t5.safetensors", URL: "https://h/t5"}}},
		{"nested subgraphs and a muted inner node", `{"nodes":[{"id":9,"type":"outer"}],"definitions":{"subgraphs":[
			{"id":"outer","nodes":[{"id":1,"type":"inner"},{"id":2,"type":"ControlNetLoader","mode":2,"widgets_values":["muted.pth"]}]},
			{"id":"inner","nodes":[{"id":1,"type":"UpscaleModelLoader","widgets_values":["4x.pth"]}]},
			{"id":"unused","nodes":[{"id":1,"type":"VAELoader","widgets_values":["never.safetensors"]}]}]}}`,
			[]Ref{{Directory: "upscale_models", Name: "4x.pth"}}},
		{"object-shaped widgets and windows paths", `{"nodes":[
			{"id":1,"type":"CheckpointLoaderSimple","widgets_values":{"ckpt_name":"SDXL\\juggernaut.safetensors"}}]}`,
			[]Ref{{Directory: "checkpoints", Name: "SDXL/juggernaut.safetensors"}}},
		{"a hash that is not a sha256 is dropped", `{"nodes":[],"models":[{"name":"m.bin","url":"https://h/m","directory":"loras","hash":"abc123","hash_type":"md5"}]}`,
			[]Ref{{Directory: "loras", Name: "m.bin", URL: "https://h/m"}}},
		{"an empty workflow", `{"nodes":[]}`, []Ref{}},
		{"a subgraph used many times, and one that contains itself, read once", `{"nodes":[{"id":1,"type":"a"},{"id":2,"type":"a"}],"definitions":{"subgraphs":[
			{"id":"a","nodes":[{"id":1,"type":"b"},{"id":2,"type":"b"},{"id":3,"type":"a"}]},
			{"id":"b","nodes":[{"id":1,"type":"VAELoader","widgets_values":["deep.safetensors"]},{"id":2,"type":"b"}]}]}}`,
			[]Ref{{Directory: "vae", Name: "deep.safetensors"}}},
		{"unknown nodes and empty widgets", `{"nodes":[{"id":1,"type":"MyCustomLoader","widgets_values":["x.safetensors"]},{"id":2,"type":"VAELoader","widgets_values":[]},{"id":3,"type":"VAELoader"}]}`, []Ref{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, err := Parse([]byte(tt.wf))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(refs, tt.want) {
				t.Fatalf("refs =\n%+v\nwant\n%+v", refs, tt.want)
			}
		})
	}
}

func TestAPIFormat(t *testing.T) {
	wf := `{
	  "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
	  "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "style.safetensors", "strength_model": 1, "model": ["4", 0], "clip": ["4", 1]}},
	  "9": {"class_type": "VAELoader", "inputs": {"vae_name": "vae-ft-mse.safetensors"}},
	  "11": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "a.safetensors", "clip_name2": "b.safetensors", "clip_name3": "c.safetensors"}},
	  "12": {"class_type": "LoraLoader", "inputs": {"lora_name": ["20", 0]}},
	  "3": {"class_type": "KSampler", "inputs": {"seed": 5}}
	}`
	refs, err := Parse([]byte(wf))
	if err != nil {
		t.Fatal(err)
	}
	want := []Ref{
		{Directory: "checkpoints", Name: "v1-5-pruned-emaonly.safetensors"},
		{Directory: "vae", Name: "vae-ft-mse.safetensors"},
		{Directory: "loras", Name: "style.safetensors"},
		{Directory: "text_encoders", Name: "a.safetensors"}, {Directory: "text_encoders", Name: "b.safetensors"}, {Directory: "text_encoders", Name: "c.safetensors"},
	}
	if !reflect.DeepEqual(refs, want) {
		t.Fatalf("refs =\n%+v\nwant\n%+v", refs, want)
	}
}

func TestInvalidWorkflows(t *testing.T) {
	tests := []struct{ name, body, says string }{
		{"empty", "", "empty"},
		{"not json", "hello", "not a ComfyUI workflow"},
		{"a list", "[1,2]", "not a ComfyUI workflow"},
		{"broken json", `{"nodes":[`, "not valid JSON"},
		{"nodes not a list", `{"nodes":{}}`, `"nodes" must be a list`},
		{"api without class_type", `{"1":{"inputs":{}}}`, "class_type"},
		{"nothing at all", `{}`, "no nodes"},
		{"a path that climbs out", `{"nodes":[{"id":1,"type":"VAELoader","widgets_values":["../../etc/passwd"]}]}`, "leaves the models folder"},
		{"an absolute path", `{"1":{"class_type":"VAELoader","inputs":{"vae_name":"/etc/passwd"}}}`, "not a relative path"},
		{"a declared model without a folder", `{"nodes":[],"models":[{"name":"x.bin","url":"https://h/x"}]}`, "no name or no directory"},
		{"a png without a workflow", string(makePNG(t, nil)), "holds no ComfyUI workflow"},
		{"a cut png", string(makePNG(t, map[string]string{"workflow": `{"nodes":[]}`})[:40]), "cut short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			e := model.AsError(err)
			if e == nil || e.Code != model.CodeInvalidWorkflow || !strings.Contains(e.Message, tt.says) {
				t.Fatalf("err = %v, want invalid_workflow saying %q", err, tt.says)
			}
			if !strings.HasSuffix(e.Message, ".") && !strings.HasSuffix(e.Message, ")") {
				t.Errorf("message %q is not a sentence", e.Message)
			}
		})
	}
}

// A PNG as ComfyUI saves it: the image, then tEXt chunks "prompt" and
// "workflow". Both are read: the workflow brings the URLs, the prompt a
// LoRA the UI's copy had muted in a later edit, say.
func TestPNG(t *testing.T) {
	prompt := `{"5":{"class_type":"LoraLoaderModelOnly","inputs":{"lora_name":"only-in-prompt.safetensors"}},"6":{"class_type":"VAELoader","inputs":{"vae_name":"ae.safetensors"}}}`
	for name, chunk := range map[string]string{"tEXt": "tEXt", "iTXt": "iTXt", "compressed iTXt": "iTXtz", "zTXt": "zTXt"} {
		t.Run(name, func(t *testing.T) {
			img := makePNGWith(t, chunk, map[string]string{"prompt": prompt, "workflow": string(fixture(t))})
			refs, err := Parse(img)
			if err != nil {
				t.Fatal(err)
			}
			want := []Ref{
				{Directory: "text_encoders", Name: "qwen_3_4b.safetensors", URL: zImage + "text_encoders/qwen_3_4b.safetensors"},
				{Directory: "vae", Name: "ae.safetensors", URL: zImage + "vae/ae.safetensors"},
				{Directory: "diffusion_models", Name: "z_image_turbo_bf16.safetensors", URL: zImage + "diffusion_models/z_image_turbo_bf16.safetensors"},
				{Directory: "loras", Name: "only-in-prompt.safetensors"},
			}
			if !reflect.DeepEqual(refs, want) {
				t.Fatalf("refs =\n%+v\nwant\n%+v", refs, want)
			}
		})
	}
}

func makePNG(t *testing.T, texts map[string]string) []byte {
	return makePNGWith(t, "tEXt", texts)
}

// makePNGWith encodes a small image and puts texts in chunks of the given
// kind before IEND, as image writers do.
func makePNGWith(t *testing.T, kind string, texts map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, 4, 4))); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	iend := bytes.LastIndex(b, []byte("IEND")) - 4
	var chunks bytes.Buffer
	for k, v := range texts {
		var data []byte
		switch kind {
		case "tEXt":
			data = append(append([]byte(k), 0), v...)
		case "zTXt":
			data = append(append([]byte(k), 0, 0), deflate(t, v)...)
		case "iTXt":
			data = append(append([]byte(k), 0, 0, 0, 0, 0), v...)
		case "iTXtz":
			kind := "iTXt"
			data = append(append([]byte(k), 0, 1, 0, 0, 0), deflate(t, v)...)
			writeChunk(&chunks, kind, data)
			continue
		}
		writeChunk(&chunks, kind, data)
	}
	out := append([]byte{}, b[:iend]...)
	out = append(out, chunks.Bytes()...)
	return append(out, b[iend:]...)
}

func writeChunk(w *bytes.Buffer, kind string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	w.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(kind))
	crc.Write(data)
	w.WriteString(kind)
	w.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	w.Write(n[:])
}

func deflate(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(s))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A loader inside a subgraph whose file widget is wired to the subgraph's
// input takes its value from each instance, not from its own saved widget:
// two instances can load two files.
func TestSubgraphInputsReadPerInstance(t *testing.T) {
	const sg = `"definitions":{"subgraphs":[{"id":"sg-1","name":"LoRA block",
	  "inputs":[{"id":"in1","name":"lora_name","type":"COMBO","linkIds":[5]}],
	  "nodes":[{"id":1,"type":"LoraLoaderModelOnly","mode":0,"inputs":[{"name":"model","type":"MODEL","link":null},{"name":"lora_name","type":"COMBO","widget":{"name":"lora_name"},"link":5}],"widgets_values":["stale-default.safetensors",1]},
	    {"id":2,"type":"VAELoader","widgets_values":["inner.safetensors"]}],
	  "links":[{"id":5,"origin_id":-10,"origin_slot":0,"target_id":1,"target_slot":1,"type":"COMBO"}]},
	 {"id":"outer","inputs":[{"name":"lora"}],
	  "nodes":[{"id":1,"type":"sg-1","inputs":[{"name":"lora_name","widget":{"name":"lora_name"},"link":7}],"widgets_values":["outer-stale.safetensors"]}],
	  "links":[[7,-10,0,1,0,"COMBO"]]}]}`
	instance := func(id int, lora string) string {
		return fmt.Sprintf(`{"id":%d,"type":"sg-1","mode":0,"inputs":[{"name":"lora_name","type":"COMBO","widget":{"name":"lora_name"},"link":null}],"widgets_values":[%q]}`, id, lora)
	}
	tests := []struct {
		name  string
		nodes string
		want  []Ref
	}{
		{"two instances, two files", instance(10, "instance-A.safetensors") + "," + instance(11, "instance-B.safetensors"),
			[]Ref{{Directory: "loras", Name: "instance-A.safetensors"}, {Directory: "vae", Name: "inner.safetensors"}, {Directory: "loras", Name: "instance-B.safetensors"}}},
		{"the same value twice is one file", instance(10, "same.safetensors") + "," + instance(11, "same.safetensors"),
			[]Ref{{Directory: "loras", Name: "same.safetensors"}, {Directory: "vae", Name: "inner.safetensors"}}},
		{"values that do not line up with the inputs are not used", `{"id":10,"type":"sg-1","inputs":[{"name":"seed","widget":{"name":"seed"},"link":null},{"name":"lora_name","widget":{"name":"lora_name"},"link":null}],"widgets_values":[5,"randomize","x.safetensors"]}`,
			[]Ref{{Directory: "loras", Name: "stale-default.safetensors"}, {Directory: "vae", Name: "inner.safetensors"}}},
		{"an instance without the value keeps the inner one", `{"id":10,"type":"sg-1"}`,
			[]Ref{{Directory: "loras", Name: "stale-default.safetensors"}, {Directory: "vae", Name: "inner.safetensors"}}},
		{"through a subgraph inside a subgraph", `{"id":12,"type":"outer","inputs":[{"name":"lora","widget":{"name":"lora"},"link":null}],"widgets_values":["nested.safetensors"]}`,
			[]Ref{{Directory: "loras", Name: "nested.safetensors"}, {Directory: "vae", Name: "inner.safetensors"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, err := Parse([]byte(`{"nodes":[` + tt.nodes + `],` + sg + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(refs, tt.want) {
				t.Fatalf("refs =\n%+v\nwant\n%+v", refs, tt.want)
			}
		})
	}
}

// Every loader the table knows, in both formats: its file inputs by name
// (API) and by position (UI), each in its folder.
func TestEveryLoader(t *testing.T) {
	for typ, l := range loaders {
		t.Run(typ, func(t *testing.T) {
			inputs := map[string]string{}
			width := 0
			for _, in := range l.inputs {
				width = max(width, in.widget+1)
			}
			widgets := make([]any, width+2) // and the loader's other widgets after them
			var want []Ref
			for i, in := range l.inputs {
				name := fmt.Sprintf("file-%d.safetensors", i)
				inputs[in.name] = name
				widgets[in.widget] = name
				want = append(want, Ref{Directory: in.directory, Name: name})
			}
			api, _ := json.Marshal(map[string]any{"1": map[string]any{"class_type": typ, "inputs": inputs}})
			ui, _ := json.Marshal(map[string]any{"nodes": []any{map[string]any{"id": 1, "type": typ, "widgets_values": widgets}}})
			for format, body := range map[string][]byte{"api": api, "ui": ui} {
				refs, err := Parse(body)
				if err != nil {
					t.Fatal(err)
				}
				slices.SortFunc(refs, func(a, b Ref) int { return strings.Compare(a.Name, b.Name) })
				if !reflect.DeepEqual(refs, want) {
					t.Errorf("%s: refs =\n%+v\nwant\n%+v", format, refs, want)
				}
			}
		})
	}
}

// The loaders and folders docs/API.md promises, against ComfyUI's source.
func TestLoaderTable(t *testing.T) {
	tests := []struct{ typ, input, dir string }{
		{"CheckpointLoader", "config_name", "configs"},
		{"CheckpointLoader", "ckpt_name", "checkpoints"},
		{"LatentUpscaleModelLoader", "model_name", "latent_upscale_models"},
		{"VAELoader", "vae_name", "vae"},
	}
	for _, tt := range tests {
		found := false
		for _, in := range loaders[tt.typ].inputs {
			found = found || (in.name == tt.input && in.directory == tt.dir)
		}
		if !found {
			t.Errorf("%s has no input %s in %s", tt.typ, tt.input, tt.dir)
		}
	}
	// CheckpointLoader's widgets: config first, then the checkpoint.
	refs, err := Parse([]byte(`{"nodes":[{"id":1,"type":"CheckpointLoader","widgets_values":["v1-inference.yaml","sd15.ckpt"]}]}`))
	want := []Ref{{Directory: "configs", Name: "v1-inference.yaml"}, {Directory: "checkpoints", Name: "sd15.ckpt"}}
	if err != nil || !reflect.DeepEqual(refs, want) {
		t.Fatalf("refs = %+v, %v; want %+v", refs, err, want)
	}
}

// VAELoader offers names that are not files in vae/: the TAESD decoders
// ComfyUI builds from vae_approx/ and its pixel-space pass-through. The
// video TAEs are files, in vae_approx/.
func TestVAELoaderBuiltins(t *testing.T) {
	for _, format := range []string{"ui", "api"} {
		var body string
		names := []string{"taesd", "taesdxl", "taesd3", "taef1", "taef2", "pixel_space", "lighttaew2_1.safetensors", "real.safetensors"}
		if format == "ui" {
			var nodes []string
			for i, n := range names {
				nodes = append(nodes, fmt.Sprintf(`{"id":%d,"type":"VAELoader","widgets_values":[%q]}`, i+1, n))
			}
			body = `{"nodes":[` + strings.Join(nodes, ",") + `]}`
		} else {
			var nodes []string
			for i, n := range names {
				nodes = append(nodes, fmt.Sprintf(`"%d":{"class_type":"VAELoader","inputs":{"vae_name":%q}}`, i+1, n))
			}
			body = `{` + strings.Join(nodes, ",") + `}`
		}
		refs, err := Parse([]byte(body))
		want := []Ref{{Directory: "vae_approx", Name: "lighttaew2_1.safetensors"}, {Directory: "vae", Name: "real.safetensors"}}
		if err != nil || !reflect.DeepEqual(refs, want) {
			t.Errorf("%s: refs = %+v, %v; want %+v", format, refs, err, want)
		}
	}
}

// The body of ComfyUI's POST /prompt, which some tools save: the prompt
// under "prompt", and the UI's workflow under extra_data.extra_pnginfo.
func TestPromptWrapper(t *testing.T) {
	refs, err := Parse([]byte(`{"client_id":"x","prompt":{"4":{"class_type":"CheckpointLoaderSimple","inputs":{"ckpt_name":"a.safetensors"}}},
	  "extra_data":{"extra_pnginfo":{"workflow":{"nodes":[{"id":1,"type":"VAELoader","widgets_values":["ae.safetensors"],"properties":{"models":[{"name":"ae.safetensors","url":"https://h/ae","directory":"vae"}]}}]}}}}`))
	// The workflow first, as in a PNG: it knows where models come from.
	want := []Ref{{Directory: "vae", Name: "ae.safetensors", URL: "https://h/ae"}, {Directory: "checkpoints", Name: "a.safetensors"}}
	if err != nil || !reflect.DeepEqual(refs, want) {
		t.Fatalf("refs = %+v, %v; want %+v", refs, err, want)
	}
	_, err = Parse([]byte(`{"client_id":"x","prompt":"a cat"}`))
	if model.ErrorCode(err) != model.CodeInvalidWorkflow {
		t.Fatalf("a prompt that is text: err = %v, want invalid_workflow", err)
	}
}

// Legacy group nodes ("workflow>Name", or "workflow/Name" before that) keep
// their inner nodes in extra.groupNodes and their widget values, all inner
// nodes' in a row, on the group node.
func TestGroupNodes(t *testing.T) {
	const groups = `"extra":{"groupNodes":{"Loaders":{"nodes":[
	  {"type":"CheckpointLoaderSimple","index":0,"widgets_values":["default.safetensors"]},
	  {"type":"LoraLoader","index":1,"widgets_values":["default-lora.safetensors",1,1]},
	  {"type":"KSampler","index":2,"widgets_values":[1,"fixed",20,8,"euler","normal",1]}],"links":[]}}}`
	tests := []struct {
		name, nodes string
		want        []Ref
	}{
		{"the group node's own values", `{"id":5,"type":"workflow>Loaders","widgets_values":["sd_xl_base_1.0.safetensors","detail.safetensors",1,1,5,"fixed",20,8,"euler","normal",1]}`,
			[]Ref{{Directory: "checkpoints", Name: "sd_xl_base_1.0.safetensors"}, {Directory: "loras", Name: "detail.safetensors"}}},
		{"the older separator", `{"id":5,"type":"workflow/Loaders","widgets_values":["a.safetensors","b.safetensors",1,1,5,"fixed",20,8,"euler","normal",1]}`,
			[]Ref{{Directory: "checkpoints", Name: "a.safetensors"}, {Directory: "loras", Name: "b.safetensors"}}},
		{"values that do not line up: the inner nodes' own", `{"id":5,"type":"workflow>Loaders","widgets_values":["x.safetensors"]}`,
			[]Ref{{Directory: "checkpoints", Name: "default.safetensors"}, {Directory: "loras", Name: "default-lora.safetensors"}}},
		{"a bypassed group node needs nothing", `{"id":5,"type":"workflow>Loaders","mode":4,"widgets_values":[]}`, []Ref{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, err := Parse([]byte(`{"nodes":[` + tt.nodes + `],` + groups + `}`))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(refs, tt.want) {
				t.Fatalf("refs =\n%+v\nwant\n%+v", refs, tt.want)
			}
		})
	}
}

// Bodies whose nesting multiplies the work (group nodes in group nodes, a
// subgraph read once per distinct instance value) are refused as too large
// to read instead of costing minutes of CPU; each was a few KB to a MB.
func TestWorkMultipliedByNestingIsRefused(t *testing.T) {
	groupChain := func(depth, k int) string {
		var groups []string
		for i := 0; i < depth; i++ {
			inner := make([]string, k)
			for j := range inner {
				typ := fmt.Sprintf("workflow>G%d", i+1)
				if i == depth-1 {
					typ = "CheckpointLoaderSimple"
				}
				inner[j] = fmt.Sprintf(`{"id":%d,"type":%q,"widgets_values":["m%d.safetensors"]}`, j, typ, j)
			}
			groups = append(groups, fmt.Sprintf(`"G%d":{"nodes":[%s]}`, i, strings.Join(inner, ",")))
		}
		return fmt.Sprintf(`{"nodes":[{"id":1,"type":"workflow>G0","widgets_values":[]}],"extra":{"groupNodes":{%s}}}`, strings.Join(groups, ","))
	}
	readings := func(inner, instances int) string {
		nodes := make([]string, inner)
		for i := range nodes {
			nodes[i] = fmt.Sprintf(`{"id":%d,"type":"CheckpointLoaderSimple","widgets_values":["m.safetensors"],"inputs":[{"name":"ckpt_name","widget":{"name":"ckpt_name"},"link":1}]}`, i+10)
		}
		sg := fmt.Sprintf(`{"id":"S","inputs":[{"name":"ckpt_name"}],"links":[{"id":1,"origin_id":-10,"origin_slot":0}],"nodes":[%s]}`, strings.Join(nodes, ","))
		top := make([]string, instances)
		for i := range top {
			top[i] = fmt.Sprintf(`{"id":%d,"type":"S","inputs":[{"name":"ckpt_name","widget":{"name":"ckpt_name"}}],"widgets_values":["x%d.safetensors"]}`, i+1, i)
		}
		return fmt.Sprintf(`{"nodes":[%s],"definitions":{"subgraphs":[%s]}}`, strings.Join(top, ","), sg)
	}
	for name, body := range map[string]string{
		"group nodes 22 deep, 2 wide":                       groupChain(22, 2),
		"a subgraph of 500 loaders, 300 distinct instances": readings(500, 300),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(body))
			if model.ErrorCode(err) != model.CodeInvalidWorkflow || !strings.Contains(err.Error(), "too large to read") {
				t.Fatalf("%d-byte body: %v, want invalid_workflow saying it is too large", len(body), err)
			}
		})
	}
	// Within the budget the same shapes are read.
	refs, err := Parse([]byte(groupChain(6, 2)))
	if err != nil || len(refs) != 2 {
		t.Fatalf("group nodes 6 deep: %v, %v", refs, err)
	}
}

// Only a UI-format workflow is read from a /prompt body's extra_pnginfo:
// another /prompt body there (each level re-read below it) is not followed.
func TestPromptBodyInsideAPromptBodyIsNotFollowed(t *testing.T) {
	inner := `{"prompt":{"1":{"class_type":"VAELoader","inputs":{"vae_name":"inner.safetensors"}}}}`
	body := `{"prompt":{"1":{"class_type":"VAELoader","inputs":{"vae_name":"outer.safetensors"}}},"extra_data":{"extra_pnginfo":{"workflow":` + inner + `}}}`
	refs, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 1 || refs[0].Name != "outer.safetensors" {
		t.Fatalf("refs = %+v, want only the outer prompt's file", refs)
	}
}
