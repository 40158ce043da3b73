package downloader

import (
	"context"
	"fmt"
	"path"
	"strings"
	"unicode"

	"dashboard/model"
	"dashboard/workflows"
)

// WorkflowPrefix starts the preset id of a workflow's download:
// "workflow:<name>".
const WorkflowPrefix = "workflow:"

// Limits of a workflow install.
const (
	maxWorkflowFiles = 200
	maxWorkflowName  = 120
)

// WorkflowFile is one model file a workflow needs, as the client asks for it.
type WorkflowFile struct {
	Directory string // the models folder, e.g. "loras"
	Name      string // the file's name in it; may hold subfolders
	URL       string // where to fetch it
	SHA256    string // the workflow's hash when it is a SHA-256, else ""
}

// InstallWorkflow queues the files a workflow needs as one download, with
// preset id "workflow:<name>". Each file is fetched and verified as a
// preset's would be (HuggingFace and its token rules included); a preset
// that lists the same file from the same URL lends it its checksum and
// exact size. Files already in place are skipped. A bad path or URL is a
// model.CodeInvalidWorkflow error naming it; nothing is queued then.
func (m *Manager) InstallWorkflow(ctx context.Context, name string, files []WorkflowFile) (Download, error) {
	p, err := m.workflowPreset(name, files)
	if err != nil {
		return Download{}, err
	}
	return m.enqueueWorkflow(ctx, p)
}

// enqueueWorkflow queues p and remembers its files under the download's
// id, for Retry. Only a download that was queued is remembered: an install
// refused because the same name is busy must not change what a retry of
// the busy one fetches.
func (m *Manager) enqueueWorkflow(ctx context.Context, p Preset) (Download, error) {
	d, err := m.enqueue(ctx, p)
	if err != nil {
		return d, err
	}
	m.mu.Lock()
	m.workflows[d.ID] = p
	m.mu.Unlock()
	return d, nil
}

// workflowPreset checks a workflow's files and makes the preset its
// download installs.
func (m *Manager) workflowPreset(name string, files []WorkflowFile) (Preset, error) {
	name = cleanWorkflowName(name)
	if len(files) == 0 {
		return Preset{}, invalidWorkflow("There is nothing to install: send the missing models as {directory, name, url}.")
	}
	if len(files) > maxWorkflowFiles {
		return Preset{}, invalidWorkflow("A workflow install takes at most %d files, not %d.", maxWorkflowFiles, len(files))
	}
	known := m.knownFiles()
	p := Preset{ID: WorkflowPrefix + name, Name: name, Category: "Workflow", Files: []PresetFile{}}
	seen := map[string]bool{} // by canonical path: an alias folder holds the same file
	for i, wf := range files {
		rel, err := cleanRelPath(strings.TrimSuffix(strings.TrimSpace(wf.Directory), "/") + "/" + strings.TrimSpace(wf.Name))
		if err != nil || strings.TrimSpace(wf.Directory) == "" || strings.TrimSpace(wf.Name) == "" {
			return Preset{}, invalidWorkflow("Model %d (%q in %q) is not a file inside the models folder.", i+1, wf.Name, wf.Directory)
		}
		u, _, err := normalizeURL(strings.TrimSpace(wf.URL))
		if err != nil {
			return Preset{}, invalidWorkflow("Model %d (%s) has no http(s) URL to fetch it from.", i+1, rel)
		}
		if seen[workflows.CanonicalPath(rel)] {
			continue
		}
		seen[workflows.CanonicalPath(rel)] = true
		f := PresetFile{Path: rel, URL: u}
		if k, ok := presetFileAt(known, rel, u); ok {
			// The preset's file, maybe under the other alias folder, where
			// ComfyUI finds it too: fetch it to the preset's path, so the
			// preset shows installed, with its checksum and size.
			f.Path, f.SizeBytes, f.exact, f.sha256 = k.Path, k.SizeBytes, k.exact, k.sha256
		}
		if sum := strings.ToLower(strings.TrimSpace(wf.SHA256)); sum != "" {
			if !model.IsSHA256(sum) {
				return Preset{}, invalidWorkflow("Model %d (%s) has a hash that is not a SHA-256 (64 hex digits).", i+1, rel)
			}
			f.sha256 = sum
		}
		p.Files = append(p.Files, f)
		p.SizeBytes += f.SizeBytes
	}
	return p, nil
}

// knownFiles are the files presets.yaml lists, by canonical path (the
// alias folders clip/text_encoders and unet/diffusion_models as one).
func (m *Manager) knownFiles() map[string][]PresetFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]PresetFile{}
	for _, p := range m.presets {
		for _, f := range p.Files {
			key := workflows.CanonicalPath(f.Path)
			out[key] = append(out[key], f)
		}
	}
	return out
}

// presetFileAt is a preset's file at rel, or at rel in its alias folder,
// fetched from url; one at rel itself first.
func presetFileAt(known map[string][]PresetFile, rel, url string) (PresetFile, bool) {
	var found PresetFile
	ok := false
	for _, k := range known[workflows.CanonicalPath(rel)] {
		if k.URL != url {
			continue
		}
		if k.Path == rel {
			return k, true
		}
		if !ok {
			found, ok = k, true
		}
	}
	return found, ok
}

// workflow is the files of workflow download id, queued since the start,
// for Retry.
func (m *Manager) workflow(id int64) (Preset, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.workflows[id]
	return p, ok
}

func isWorkflowID(id string) bool { return strings.HasPrefix(id, WorkflowPrefix) }

// cleanWorkflowName keeps a name fit for the queue, the log and a title.
func cleanWorkflowName(name string) string {
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(name))
	name = strings.TrimSpace(path.Base("/" + strings.ReplaceAll(name, `\`, "/")))
	if len(name) > maxWorkflowName {
		name = shorten(name, maxWorkflowName)
	}
	if name == "" || name == "/" || name == "." {
		return "workflow"
	}
	return name
}

// what names p in a sentence.
func (p Preset) what() string {
	if isWorkflowID(p.ID) {
		return fmt.Sprintf("Workflow %q", p.Name)
	}
	return fmt.Sprintf("Preset %q", p.ID)
}

func invalidWorkflow(format string, args ...any) *model.Error {
	return model.Errorf(model.CodeInvalidWorkflow, format, args...)
}
