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

// maxReadings bounds how many distinct subgraph readings (a subgraph and
// the values an instance gives its inputs) one workflow may ask for.
const maxReadings = 4096

// maxVisits bounds the work of one workflow: the nodes read, counting a
// node again for every subgraph reading and group node that holds it.
// Nesting multiplies them, so a small body could otherwise ask for minutes
// of work; real workflows need a few thousand.
const maxVisits = 100_000

// subgraphInput is the origin_id of a link that comes from the input of
// the subgraph it is in.
const subgraphInput = -10

// Legacy group nodes are typed "workflow>Name" (earlier "workflow/Name")
// and keep their inner nodes in extra.groupNodes.
var groupPrefixes = []string{"workflow>", "workflow/"}

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
	// walked holds the subgraph readings done: a subgraph and the values
	// an instance gives its inputs. Instances that give the same values
	// need the same files, so each reading is done once.
	walked    map[string]bool
	subgraphs map[string]subgraph
	groups    map[string][]uiNode // legacy group nodes, by name
	visits    int                 // nodes read so far (see maxVisits)
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
	key := CanonicalPath(dir + "/" + name)
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
	if raw, ok := top["prompt"]; ok && !hasClassType(raw) {
		return c.readPromptBody(top, raw)
	}
	return c.readAPI(top)
}

// readPromptBody reads the body of ComfyUI's POST /prompt, which some
// tools save: {"prompt": <API format>, "client_id", "extra_data":
// {"extra_pnginfo": {"workflow": <UI format>}}}. Both are read, the
// workflow first, as in a PNG.
func (c *collector) readPromptBody(top map[string]json.RawMessage, prompt json.RawMessage) error {
	var extra struct {
		PNGInfo struct {
			Workflow json.RawMessage `json:"workflow"`
		} `json:"extra_pnginfo"`
	}
	if raw, ok := top["extra_data"]; ok && json.Unmarshal(raw, &extra) == nil {
		// Only a UI-format workflow is read there: another /prompt body
		// inside would make the reading recurse without end.
		var wf map[string]json.RawMessage
		if json.Unmarshal(extra.PNGInfo.Workflow, &wf) == nil {
			if _, ui := wf["nodes"]; ui {
				if err := c.readUI(wf); err != nil {
					return err
				}
			}
		}
	}
	var nodes map[string]json.RawMessage
	if err := json.Unmarshal(prompt, &nodes); err != nil {
		return invalid("The workflow's \"prompt\" must be an API-format prompt, an object of nodes (%s).", jsonProblem(err))
	}
	return c.readAPI(nodes)
}

// hasClassType says whether raw is a node of the API format: a node whose
// id is "prompt" is not the /prompt body.
func hasClassType(raw json.RawMessage) bool {
	var n struct {
		ClassType json.RawMessage `json:"class_type"`
	}
	return json.Unmarshal(raw, &n) == nil && n.ClassType != nil
}

// uiNode is a node of the UI format, as far as models are concerned.
type uiNode struct {
	ID         json.RawMessage `json:"id"`
	Type       string          `json:"type"`
	Mode       int             `json:"mode"`
	Widgets    json.RawMessage `json:"widgets_values"`
	Inputs     uiInputs        `json:"inputs"`
	Properties struct {
		Models []modelFile `json:"models"`
	} `json:"properties"`
}

// uiInput is one of a node's inputs: a widget's input when Widget is set,
// wired to a link when Link is.
type uiInput struct {
	Name   string `json:"name"`
	Widget *struct {
		Name string `json:"name"`
	} `json:"widget"`
	Link *int64 `json:"-"`
}

// uiInputs decodes leniently: inputs only refine what the widgets say, so
// an odd shape is read as no inputs rather than refusing the workflow.
type uiInputs []uiInput

func (ins *uiInputs) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	for _, r := range raw {
		var in uiInput
		var link struct {
			Link json.RawMessage `json:"link"`
		}
		if json.Unmarshal(r, &in) != nil || json.Unmarshal(r, &link) != nil {
			continue
		}
		var id int64
		if json.Unmarshal(link.Link, &id) == nil {
			in.Link = &id
		}
		*ins = append(*ins, in)
	}
	return nil
}

// widgetName is the name of the widget in is for, "" when it is none.
func (in uiInput) widgetName() string {
	if in.Widget == nil {
		return ""
	}
	if in.Widget.Name != "" {
		return in.Widget.Name
	}
	return in.Name
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
	ID     string   `json:"id"`
	Nodes  []uiNode `json:"nodes"`
	Inputs []struct {
		Name string `json:"name"`
	} `json:"inputs"`
	Links graphLinks `json:"links"`
}

// slot is the position of the subgraph's input an instance's input feeds:
// by name, else by the instance input's position i.
func (sg subgraph) slot(name string, i int) int {
	for j, in := range sg.Inputs {
		if in.Name == name {
			return j
		}
	}
	if i < len(sg.Inputs) {
		return i
	}
	return -1
}

// graphLink is where a link comes from.
type graphLink struct {
	origin int64 // node id; subgraphInput for the subgraph's own input
	slot   int
}

// graphLinks are a graph's links by id. Subgraphs save them as objects,
// the top-level graph as [id, origin_id, origin_slot, target_id,
// target_slot, type]; both are read, and one that is neither is skipped.
type graphLinks map[int64]graphLink

func (ls *graphLinks) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	*ls = graphLinks{}
	for _, r := range raw {
		var obj struct {
			ID     *int64 `json:"id"`
			Origin *int64 `json:"origin_id"`
			Slot   int    `json:"origin_slot"`
		}
		var arr []json.RawMessage
		switch {
		case json.Unmarshal(r, &obj) == nil && obj.ID != nil && obj.Origin != nil:
			(*ls)[*obj.ID] = graphLink{origin: *obj.Origin, slot: obj.Slot}
		case json.Unmarshal(r, &arr) == nil && len(arr) >= 3:
			var id, origin int64
			var slot int
			if json.Unmarshal(arr[0], &id) == nil && json.Unmarshal(arr[1], &origin) == nil && json.Unmarshal(arr[2], &slot) == nil {
				(*ls)[id] = graphLink{origin: origin, slot: slot}
			}
		}
	}
	return nil
}

// graph is where nodes are read: a subgraph's links, and the values the
// instance being read gives the subgraph's inputs, by slot. Both are
// empty for the top-level graph.
type graph struct {
	links    graphLinks
	bindings map[int]string
}

// fed is the value an input wired to link receives from the subgraph's
// input, when it is wired to it and the instance gives one.
func (g graph) fed(link *int64) (string, bool) {
	if link == nil {
		return "", false
	}
	l, ok := g.links[*link]
	if !ok || l.origin != subgraphInput {
		return "", false
	}
	v, ok := g.bindings[l.slot]
	return v, ok
}

// key names a reading of subgraph id with these bindings.
func (g graph) key(id string) string {
	slots := make([]int, 0, len(g.bindings))
	for s := range g.bindings {
		slots = append(slots, s)
	}
	slices.Sort(slots)
	var b strings.Builder
	b.WriteString(id)
	for _, s := range slots {
		fmt.Fprintf(&b, "\x00%d=%s", s, g.bindings[s])
	}
	return b.String()
}

// readUI reads the UI format: top-level nodes, the subgraphs they
// instantiate, and the top-level models list.
func (c *collector) readUI(top map[string]json.RawMessage) error {
	var nodes []uiNode
	if err := json.Unmarshal(top["nodes"], &nodes); err != nil {
		return invalid("The workflow's \"nodes\" must be a list of nodes (%s).", jsonProblem(err))
	}
	c.subgraphs = map[string]subgraph{}
	if raw, ok := top["definitions"]; ok {
		var defs struct {
			Subgraphs []subgraph `json:"subgraphs"`
		}
		if err := json.Unmarshal(raw, &defs); err != nil {
			return invalid("The workflow's \"definitions\" could not be read (%s).", jsonProblem(err))
		}
		for _, sg := range defs.Subgraphs {
			c.subgraphs[sg.ID] = sg
		}
	}
	c.groups = map[string][]uiNode{}
	if raw, ok := top["extra"]; ok {
		var extra struct {
			GroupNodes map[string]struct {
				Nodes []uiNode `json:"nodes"`
			} `json:"groupNodes"`
		}
		if err := json.Unmarshal(raw, &extra); err != nil {
			return invalid("The workflow's \"extra\" could not be read (%s).", jsonProblem(err))
		}
		for name, g := range extra.GroupNodes {
			c.groups[name] = g.Nodes
		}
	}
	if err := c.readNodes(nodes, graph{}, 0); err != nil {
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

func (c *collector) readNodes(nodes []uiNode, g graph, depth int) error {
	if depth > maxDepth {
		return invalid("The workflow nests subgraphs more than %d deep.", maxDepth)
	}
	for _, n := range nodes {
		if c.visits++; c.visits > maxVisits {
			return invalid("The workflow is too large to read: more than %d nodes, counting the nodes of a subgraph or group node once for every use.", maxVisits)
		}
		if n.Mode == modeMuted || n.Mode == modeBypassed {
			continue
		}
		where := fmt.Sprintf("Node %s (%s)", strings.Trim(string(n.ID), `"`), n.Type)
		for _, m := range n.Properties.Models {
			if err := c.addDeclared(m, where); err != nil {
				return err
			}
		}
		if sg, ok := c.subgraphs[n.Type]; ok {
			inner := graph{links: sg.Links, bindings: instanceValues(n, sg, g)}
			key := inner.key(n.Type)
			if c.walked[key] {
				continue
			}
			if c.walked == nil {
				c.walked = map[string]bool{}
			}
			if len(c.walked) >= maxReadings {
				return invalid("The workflow's subgraphs are used with more than %d different inputs.", maxReadings)
			}
			c.walked[key] = true
			if err := c.readNodes(sg.Nodes, inner, depth+1); err != nil {
				return err
			}
			continue
		}
		if inner, ok := c.groupNode(n); ok {
			if err := c.readNodes(inner, graph{}, depth+1); err != nil {
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
			// A widget wired to the subgraph's input takes the instance's value.
			for _, ni := range n.Inputs {
				if ni.widgetName() == in.name {
					if v, ok := g.fed(ni.Link); ok {
						values[i] = v
					}
				}
			}
			if v := values[i]; v != "" {
				dir, ok := in.folder(v)
				if !ok {
					continue
				}
				if err := c.add(Ref{Directory: dir, Name: v}); err != nil {
					return invalid("%s: %s.", where, err.Error())
				}
			}
		}
	}
	return nil
}

// instanceValues are the values instance n of sg gives the subgraph's
// inputs, by slot: its widgets_values, one per input that has a widget and
// in their order (or by name when an object), unless the input is itself
// fed by the subgraph n sits in. Values that are not strings are not file
// names and are left out. A list whose length is not the number of those
// inputs (a promoted seed's "control after generate", say) cannot be
// matched to them safely, and is not used.
func instanceValues(n uiNode, sg subgraph, g graph) map[int]string {
	var list []any
	var obj map[string]any
	if json.Unmarshal(n.Widgets, &list) != nil {
		_ = json.Unmarshal(n.Widgets, &obj)
	}
	widgets := 0
	for _, in := range n.Inputs {
		if in.widgetName() != "" {
			widgets++
		}
	}
	if len(list) != widgets {
		list = nil
	}
	out := map[int]string{}
	k := 0
	for i, in := range n.Inputs {
		name := in.widgetName()
		if name == "" {
			continue
		}
		var v any
		if k < len(list) {
			v = list[k]
		} else if obj != nil {
			v = obj[name]
		}
		k++
		s, ok := v.(string)
		if fed, ok2 := g.fed(in.Link); ok2 {
			s, ok = fed, true
		}
		if slot := sg.slot(in.Name, i); ok && slot >= 0 {
			out[slot] = s
		}
	}
	return out
}

// groupNode gives the inner nodes of a legacy group node, nil and false
// when n is none. The group node holds its inner nodes' widget values in a
// row, in their order; when their count matches the inner nodes' own,
// each inner node gets its share, else it keeps its own values.
func (c *collector) groupNode(n uiNode) ([]uiNode, bool) {
	var inner []uiNode
	found := false
	for _, p := range groupPrefixes {
		if name, ok := strings.CutPrefix(n.Type, p); ok {
			inner, found = c.groups[name]
			if found {
				break
			}
		}
	}
	if !found {
		return nil, false
	}
	var outer []json.RawMessage
	if json.Unmarshal(n.Widgets, &outer) != nil {
		return inner, true
	}
	own := make([][]json.RawMessage, len(inner))
	total := 0
	for i, in := range inner {
		_ = json.Unmarshal(in.Widgets, &own[i])
		total += len(own[i])
	}
	if total != len(outer) {
		return inner, true
	}
	out := make([]uiNode, len(inner))
	at := 0
	for i, in := range inner {
		share, _ := json.Marshal(outer[at : at+len(own[i])])
		at += len(own[i])
		in.Widgets = share
		out[i] = in
	}
	return out, true
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
			dir, ok := in.folder(name)
			if !ok {
				continue
			}
			if err := c.add(Ref{Directory: dir, Name: name}); err != nil {
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
