package workflows

import (
	"path"
	"slices"
	"strings"
)

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
	// special, when set, says where a value ComfyUI does not look up in
	// directory is: another folder, or ok false when it is no file.
	special func(value string) (dir string, ok, handled bool)
}

// folder is where ComfyUI looks for the file value names; ok is false when
// value names no file.
func (in loaderInput) folder(value string) (string, bool) {
	if in.special != nil {
		if dir, ok, handled := in.special(value); handled {
			return dir, ok
		}
	}
	return in.directory, true
}

// VAELoader's names that are not files in vae/ (ComfyUI's nodes.py,
// VAELoader.load_vae): "pixel_space" is built in; the image TAEs are
// built from vae_approx/<name>_encoder.* and _decoder.*, which the list
// offers only when both are there, so nothing is missing; the video TAEs
// are files in vae_approx/, offered by their file name.
var (
	vaeBuiltins  = []string{"pixel_space", "taesd", "taesdxl", "taesd3", "taef1", "taef2"}
	vaeVideoTAEs = []string{"taehv", "lighttaew2_2", "lighttaew2_1", "lighttaehy1_5", "taeltx_2", "taeh3"}
)

func vaeSpecial(value string) (string, bool, bool) {
	if slices.Contains(vaeBuiltins, value) {
		return "", false, true
	}
	if slices.Contains(vaeVideoTAEs, strings.TrimSuffix(value, path.Ext(value))) {
		return "vae_approx", true, true
	}
	return "", false, false
}

func one(name, dir string) loader {
	return loader{inputs: []loaderInput{{name: name, directory: dir}}}
}

func many(dir string, names ...string) loader {
	l := loader{}
	for i, n := range names {
		l.inputs = append(l.inputs, loaderInput{name: n, widget: i, directory: dir})
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
		{name: "config_name", widget: 0, directory: "configs"}, {name: "ckpt_name", widget: 1, directory: "checkpoints"},
	}},
	"LoraLoader":           one("lora_name", "loras"),
	"LoraLoaderModelOnly":  one("lora_name", "loras"),
	"VAELoader":            {inputs: []loaderInput{{name: "vae_name", directory: "vae", special: vaeSpecial}}},
	"UNETLoader":           one("unet_name", "diffusion_models"),
	"CLIPLoader":           one("clip_name", "text_encoders"),
	"DualCLIPLoader":       many("text_encoders", "clip_name1", "clip_name2"),
	"TripleCLIPLoader":     many("text_encoders", "clip_name1", "clip_name2", "clip_name3"),
	"QuadrupleCLIPLoader":  many("text_encoders", "clip_name1", "clip_name2", "clip_name3", "clip_name4"),
	"CLIPVisionLoader":     one("clip_name", "clip_vision"),
	"ControlNetLoader":     one("control_net_name", "controlnet"),
	"DiffControlNetLoader": one("control_net_name", "controlnet"),
	"UpscaleModelLoader":   one("model_name", "upscale_models"),
	// comfy_extras/nodes_hunyuan.py
	"LatentUpscaleModelLoader": one("model_name", "latent_upscale_models"),
	"StyleModelLoader":         one("style_model_name", "style_models"),
	"GLIGENLoader":             one("gligen_name", "gligen"),
	"HypernetworkLoader":       one("hypernetwork_name", "hypernetworks"),
	"PhotoMakerLoader":         one("photomaker_model_name", "photomaker"),
	"AudioEncoderLoader":       one("audio_encoder_name", "audio_encoders"),
	"ModelPatchLoader":         one("name", "model_patches"),
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

// CanonicalPath is rel with its folder named canonically, so the same file
// under either alias has one key: ComfyUI looks in both.
func CanonicalPath(rel string) string {
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
