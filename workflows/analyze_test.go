package workflows

import (
	"encoding/json"
	"testing"
)

func TestAnalyze(t *testing.T) {
	refs := []Ref{
		{Directory: "checkpoints", Name: "sd_xl_base_1.0.safetensors"},
		{Directory: "text_encoders", Name: "t5xxl_fp16.safetensors", URL: "https://huggingface.co/x/t5"},
		{Directory: "unet", Name: "sub/flux1-dev.safetensors", Hash: "aa"},
		{Directory: "loras", Name: "nowhere.safetensors"},
	}
	known := []Known{
		{PresetID: "SDXL", PresetName: "SDXL Base", Path: "checkpoints/sd_xl_base_1.0.safetensors", URL: "https://h/sdxl", Size: 6_900_000_000},
		{PresetID: "FLUX", PresetName: "FLUX Dev", Path: "clip/t5xxl_fp16.safetensors", URL: "https://h/t5", Size: 9_800_000_000},
		{PresetID: "FLUX", PresetName: "FLUX Dev", Path: "diffusion_models/sub/flux1-dev.safetensors", URL: "https://h/flux"},
		{PresetID: "OTHER", PresetName: "Other", Path: "loras/elsewhere.safetensors", URL: "https://h/o"},
	}
	onDisk := map[string]bool{"clip/t5xxl_fp16.safetensors": true}
	got := Analyze(refs, known, func(rel string) bool { return onDisk[rel] })
	raw, _ := json.Marshal(got)
	want := `[` +
		`{"name":"sd_xl_base_1.0.safetensors","directory":"checkpoints","path":"checkpoints/sd_xl_base_1.0.safetensors","present":false,"hash":null,"size_bytes":6900000000,"sources":[{"kind":"preset","preset_id":"SDXL","preset_name":"SDXL Base","url":"https://h/sdxl"}]},` +
		`{"name":"t5xxl_fp16.safetensors","directory":"text_encoders","path":"clip/t5xxl_fp16.safetensors","present":true,"hash":null,"size_bytes":9800000000,"sources":[{"kind":"preset","preset_id":"FLUX","preset_name":"FLUX Dev","url":"https://h/t5"},{"kind":"url","url":"https://huggingface.co/x/t5"}]},` +
		`{"name":"sub/flux1-dev.safetensors","directory":"unet","path":"unet/sub/flux1-dev.safetensors","present":false,"hash":"aa","size_bytes":null,"sources":[{"kind":"preset","preset_id":"FLUX","preset_name":"FLUX Dev","url":"https://h/flux"}]},` +
		`{"name":"nowhere.safetensors","directory":"loras","path":"loras/nowhere.safetensors","present":false,"hash":null,"size_bytes":null,"sources":[]}` +
		`]`
	if string(raw) != want {
		t.Fatalf("got\n%s\nwant\n%s", raw, want)
	}
}
