// Package workflows reads ComfyUI workflows and finds the model files they
// need: from the models the workflow declares (properties.models on nodes
// and the top-level models list, with a URL and sometimes a hash) and from
// the file inputs of ComfyUI's core loader nodes.
//
// It reads the three forms a workflow comes in: the UI format the ComfyUI
// front end saves (nodes, with subgraphs under definitions.subgraphs), the
// API format (node id → class_type and inputs), and a PNG whose text chunks
// hold "workflow" and/or "prompt" as ComfyUI writes them. Nodes that are
// muted (mode 2) or bypassed (mode 4) need nothing, and neither do the nodes
// inside a subgraph whose instance is muted or bypassed.
package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"dashboard/model"
)

// Ref is one model file a workflow refers to.
type Ref struct {
	Directory string // models folder, e.g. "checkpoints" (as the workflow says it)
	Name      string // file name within it; may hold subfolders ("sdxl/x.safetensors")
	URL       string // where the workflow says it comes from, "" if it does not
	Hash      string // lower-case SHA-256 the workflow gives, "" if none (or not a SHA-256)
}

// Path is the file's path relative to the models folder.
func (r Ref) Path() string { return r.Directory + "/" + r.Name }

// Node modes that do not run.
const (
	modeMuted    = 2
	modeBypassed = 4
)

// maxDepth bounds subgraphs inside subgraphs; ComfyUI nests a few at most.
const maxDepth = 64

// Parse reads a workflow in any of its forms and returns every distinct
// model file it refers to, in the order first met. A body that is not a
// workflow is a model.CodeInvalidWorkflow error saying what is wrong.
func Parse(body []byte) ([]Ref, error) {
	body = bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")) // a BOM some editors add
	if bytes.HasPrefix(body, pngSignature) {
		return parsePNG(body)
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, invalid("The file is empty: drop a ComfyUI workflow (.json) or an image ComfyUI saved (.png).")
	}
	if trimmed[0] != '{' {
		return nil, invalid("This is not a ComfyUI workflow: expected a JSON object or a PNG image.")
	}
	var c collector
	if err := c.readJSON(trimmed); err != nil {
		return nil, err
	}
	return c.result()
}

// collector gathers references, one per file.
type collector struct {
	refs  []Ref
	index map[string]int // Path → position in refs
	// walked holds the subgraphs already read: every instance of one needs
	// the same files, so each is read once, however often it is used.
	walked map[string]bool
}

func (c *collector) add(r Ref) error {
	dir, name, err := cleanRef(r.Directory, r.Name)
	if err != nil {
		return err
	}
	r.Directory, r.Name = dir, name
	r.Hash = strings.ToLower(strings.TrimSpace(r.Hash))
	if !model.IsSHA256(r.Hash) {
		r.Hash = ""
	}
	if c.index == nil {
		c.index = map[string]int{}
	}
	key := canonicalPath(dir + "/" + name)
	if i, ok := c.index[key]; ok {
		// The same file met again: keep what either mention knows.
		prev := &c.refs[i]
		if prev.URL == "" {
			prev.URL = r.URL
		}
		if prev.Hash == "" {
			prev.Hash = r.Hash
		}
		return nil
	}
	c.index[key] = len(c.refs)
	c.refs = append(c.refs, r)
	return nil
}

func (c *collector) result() ([]Ref, error) {
	if c.refs == nil {
		return []Ref{}, nil
	}
	return c.refs, nil
}

// readJSON tells the two JSON forms apart and reads one.
func (c *collector) readJSON(raw []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return invalid("The workflow is not valid JSON (%s).", jsonProblem(err))
	}
	if _, ok := top["nodes"]; ok {
		return c.readUI(top)
	}
	return c.readAPI(top)
}

// uiNode is a node of the UI format, as far as models are concerned.
type uiNode struct {
	ID         json.RawMessage `json:"id"`
	Type       string          `json:"type"`
	Mode       int             `json:"mode"`
	Widgets    json.RawMessage `json:"widgets_values"`
	Properties struct {
		Models []modelFile `json:"models"`
	} `json:"properties"`
}

// modelFile is a declared model: ComfyUI's {name, url, directory, hash, hash_type}.
type modelFile struct {
	Name      string `json:"name"`
	URL       string `json:"url"`
	Directory string `json:"directory"`
	Hash      string `json:"hash"`
	HashType  string `json:"hash_type"`
}

func (m modelFile) ref() Ref {
	r := Ref{Directory: m.Directory, Name: m.Name, URL: strings.TrimSpace(m.URL)}
	if m.HashType == "" || strings.EqualFold(m.HashType, "sha256") {
		r.Hash = strings.TrimSpace(m.Hash)
	}
	return r
}

type subgraph struct {
	ID    string   `json:"id"`
	Nodes []uiNode `json:"nodes"`
}

// readUI reads the UI format: top-level nodes, the subgraphs they
// instantiate, and the top-level models list.
func (c *collector) readUI(top map[string]json.RawMessage) error {
	var nodes []uiNode
	if err := json.Unmarshal(top["nodes"], &nodes); err != nil {
		return invalid("The workflow's \"nodes\" must be a list of nodes (%s).", jsonProblem(err))
	}
	subgraphs := map[string][]uiNode{}
	if raw, ok := top["definitions"]; ok {
		var defs struct {
			Subgraphs []subgraph `json:"subgraphs"`
		}
		if err := json.Unmarshal(raw, &defs); err != nil {
			return invalid("The workflow's \"definitions\" could not be read (%s).", jsonProblem(err))
		}
		for _, sg := range defs.Subgraphs {
			subgraphs[sg.ID] = sg.Nodes
		}
	}
	if err := c.readNodes(nodes, subgraphs, 0); err != nil {
		return err
	}
	if raw, ok := top["models"]; ok {
		var models []modelFile
		if err := json.Unmarshal(raw, &models); err != nil {
			return invalid("The workflow's \"models\" must be a list of {name, url, directory} (%s).", jsonProblem(err))
		}
		for _, m := range models {
			if err := c.addDeclared(m, "the workflow's models list"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *collector) readNodes(nodes []uiNode, subgraphs map[string][]uiNode, depth int) error {
	if depth > maxDepth {
		return invalid("The workflow nests subgraphs more than %d deep.", maxDepth)
	}
	for _, n := range nodes {
		if n.Mode == modeMuted || n.Mode == modeBypassed {
			continue
		}
		where := fmt.Sprintf("Node %s (%s)", strings.Trim(string(n.ID), `"`), n.Type)
		for _, m := range n.Properties.Models {
			if err := c.addDeclared(m, where); err != nil {
				return err
			}
		}
		if inner, ok := subgraphs[n.Type]; ok {
			if c.walked[n.Type] {
				continue
			}
			if c.walked == nil {
				c.walked = map[string]bool{}
			}
			c.walked[n.Type] = true
			if err := c.readNodes(inner, subgraphs, depth+1); err != nil {
				return err
			}
			continue
		}
		l, ok := loaders[n.Type]
		if !ok {
			continue
		}
		values, err := widgetValues(n.Widgets, l)
		if err != nil {
			return invalid("The widgets of %s could not be read (%s).", where, err)
		}
		for i, in := range l.inputs {
			if v := values[i]; v != "" {
				if err := c.add(Ref{Directory: in.directory, Name: v}); err != nil {
					return invalid("%s: %s.", where, err.Error())
				}
			}
		}
	}
	return nil
}

func (c *collector) addDeclared(m modelFile, where string) error {
	if strings.TrimSpace(m.Name) == "" || strings.TrimSpace(m.Directory) == "" {
		return invalid("A model declared by %s has no name or no directory.", where)
	}
	if err := c.add(m.ref()); err != nil {
		return invalid("A model declared by %s: %s.", where, err.Error())
	}
	return nil
}

// widgetValues reads a loader's file names from its widgets_values: a list
// in widget order (what the front end saves) or, from some front ends, an
// object keyed by input name. Values that are not strings are not names.
func widgetValues(raw json.RawMessage, l loader) ([]string, error) {
	out := make([]string, len(l.inputs))
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return out, nil
	}
	switch raw[0] {
	case '[':
		var list []any
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		for i, in := range l.inputs {
			if in.widget < len(list) {
				out[i], _ = list[in.widget].(string)
			}
		}
	case '{':
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		for i, in := range l.inputs {
			out[i], _ = obj[in.name].(string)
		}
	default:
		return nil, fmt.Errorf("widgets_values must be a list or an object")
	}
	return out, nil
}

// apiNode is a node of the API format.
type apiNode struct {
	ClassType string                     `json:"class_type"`
	Inputs    map[string]json.RawMessage `json:"inputs"`
}

// readAPI reads the API format: {"<node id>": {"class_type", "inputs"}}.
// The API format holds only what runs, so every node counts.
func (c *collector) readAPI(top map[string]json.RawMessage) error {
	if len(top) == 0 {
		return invalid("The workflow has no nodes.")
	}
	ids := make([]string, 0, len(top))
	for id := range top {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareIDs)
	for _, id := range ids {
		var n apiNode
		if err := json.Unmarshal(top[id], &n); err != nil || n.ClassType == "" {
			return invalid("This is neither a ComfyUI workflow (no \"nodes\") nor an API-format prompt (entry %q has no \"class_type\").", id)
		}
		l, ok := loaders[n.ClassType]
		if !ok {
			continue
		}
		for _, in := range l.inputs {
			var name string
			// A linked input ([node, slot]) is not a file name.
			if json.Unmarshal(n.Inputs[in.name], &name) != nil || name == "" {
				continue
			}
			if err := c.add(Ref{Directory: in.directory, Name: name}); err != nil {
				return invalid("Node %s (%s): %s.", id, n.ClassType, err.Error())
			}
		}
	}
	return nil
}

// compareIDs orders node ids numerically when they are numbers ("9" < "10").
func compareIDs(a, b string) int {
	if len(a) != len(b) && isDigits(a) && isDigits(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// cleanRef checks a folder and file name and returns them slash-separated.
// Names saved on Windows use backslashes; a name that climbs out of its
// folder, or is absolute, is refused.
func cleanRef(dir, name string) (string, string, error) {
	dir = strings.TrimSpace(strings.ReplaceAll(dir, `\`, "/"))
	name = strings.TrimSpace(strings.ReplaceAll(name, `\`, "/"))
	shown := strings.TrimSuffix(dir, "/") + "/" + name
	for _, p := range []string{dir, name} {
		if strings.ContainsRune(p, 0) || strings.HasPrefix(p, "/") || (len(p) > 1 && p[1] == ':') {
			return "", "", fmt.Errorf("the model path %q is not a relative path", shown)
		}
		for _, seg := range strings.Split(p, "/") {
			if seg == ".." {
				return "", "", fmt.Errorf("the model path %q leaves the models folder", shown)
			}
		}
	}
	dir = strings.Trim(dir, "/")
	if dir == "" || name == "" || strings.HasSuffix(name, "/") {
		return "", "", fmt.Errorf("the model path %q names no file", shown)
	}
	return path.Clean(dir), path.Clean(name), nil
}

func invalid(format string, args ...any) *model.Error {
	return model.Errorf(model.CodeInvalidWorkflow, format, args...)
}

// jsonProblem says where JSON went wrong, without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("%s is %s where %s was expected", typ.Field, typ.Value, typ.Type)
		}
		return fmt.Sprintf("found %s where %s was expected", typ.Value, typ.Type)
	}
	return err.Error()
}
