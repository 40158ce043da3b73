package workflows

import "strings"

// loader is a ComfyUI node that loads model files, and which of its inputs
// name one: by input name in the API format, by widget position in the UI
// format.
type loader struct {
	inputs []loaderInput
}

type loaderInput struct {
	name      string // the input's name (API format, and object-shaped widgets)
	widget    int    // its position in widgets_values (UI format)
	directory string // the models folder ComfyUI looks in
}

func one(name, dir string) loader {
	return loader{inputs: []loaderInput{{name, 0, dir}}}
}

func many(dir string, names ...string) loader {
	l := loader{}
	for i, n := range names {
		l.inputs = append(l.inputs, loaderInput{n, i, dir})
	}
	return l
}

// loaders are ComfyUI's core loader nodes (comfy/nodes.py and comfy_extras)
// and the widget order the front end saves them in. docs/API.md lists them.
var loaders = map[string]loader{
	"CheckpointLoaderSimple":    one("ckpt_name", "checkpoints"),
	"ImageOnlyCheckpointLoader": one("ckpt_name", "checkpoints"),
	"unCLIPCheckpointLoader":    one("ckpt_name", "checkpoints"),
	"CheckpointLoader": {inputs: []loaderInput{
		{"config_name", 0, "configs"}, {"ckpt_name", 1, "checkpoints"},
	}},
	"LoraLoader":          one("lora_name", "loras"),
	"LoraLoaderModelOnly": one("lora_name", "loras"),
	"VAELoader":           one("vae_name", "vae"),
	"UNETLoader":          one("unet_name", "diffusion_models"),
	"CLIPLoader":          one("clip_name", "text_encoders"),
	"DualCLIPLoader":      many("text_encoders", "clip_name1", "clip_name2"),
	"TripleCLIPLoader":    many("text_encoders", "clip_name1", "clip_name2", "clip_name3"),
	"QuadrupleCLIPLoader": many("text_encoders", "clip_name1", "clip_name2", "clip_name3", "clip_name4"),
	"CLIPVisionLoader":    one("clip_name", "clip_vision"),
	"ControlNetLoader":    one("control_net_name", "controlnet"),
	"DiffControlNetLoader": {inputs: []loaderInput{
		{"control_net_name", 0, "controlnet"},
	}},
	"UpscaleModelLoader": one("model_name", "upscale_models"),
	"StyleModelLoader":   one("style_model_name", "style_models"),
	"GLIGENLoader":       one("gligen_name", "gligen"),
	"HypernetworkLoader": one("hypernetwork_name", "hypernetworks"),
	"PhotoMakerLoader":   one("photomaker_model_name", "photomaker"),
	"AudioEncoderLoader": one("audio_encoder_name", "audio_encoders"),
	"ModelPatchLoader":   one("name", "model_patches"),
}

// aliases are folders ComfyUI treats as one: a model may sit in either.
var aliases = map[string]string{
	"clip":             "text_encoders",
	"text_encoders":    "clip",
	"unet":             "diffusion_models",
	"diffusion_models": "unet",
}

// canonicalDir names a folder and its alias alike, so a file met under both
// names counts once.
func canonicalDir(dir string) string {
	switch dir {
	case "clip":
		return "text_encoders"
	case "unet":
		return "diffusion_models"
	}
	return dir
}

// canonicalPath is rel with its folder named canonically, so the same file
// under either alias has one key.
func canonicalPath(rel string) string {
	dir, rest, _ := strings.Cut(rel, "/")
	return canonicalDir(dir) + "/" + rest
}

// Folders returns dir and its alias, if it has one: where ComfyUI looks.
func Folders(dir string) []string {
	if a, ok := aliases[dir]; ok {
		return []string{dir, a}
	}
	return []string{dir}
}
