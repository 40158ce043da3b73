package comfyui

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What ComfyUI answers, reduced to what the watcher needs. Decoding is strict
// about the outer shape (a wrong shape means ComfyUI is not healthy) and
// lenient inside outputs and status messages, which custom nodes fill with
// whatever they like.

// queueItem is one entry of queue_running or queue_pending. ComfyUI sends
// [number, prompt_id, graph, extra_data, outputs_to_execute] and some versions a
// sixth element of sensitive data; extra_data may hold API keys too, so it is
// only ever searched for a workflow name, never logged or stored.
type queueItem struct {
	ID    string // as promptID keeps it
	Raw   string // as ComfyUI sent it, to ask /history/{id}
	Extra json.RawMessage
}

// maxPromptID is the longest prompt id kept as it is. ComfyUI makes UUIDs,
// but a client may choose its own id, of any length; one longer than an
// activity's subtitle allows would be refused on every poll.
const maxPromptID = 128

// promptID is the id the watcher logs and stores for a prompt: raw itself,
// or for a longer one its start and a hash of the whole, which is as unique
// and the same on every poll.
func promptID(raw string) string {
	if len(raw) <= maxPromptID {
		return raw
	}
	sum := sha256.Sum256([]byte(raw))
	return truncate(raw, 64) + hex.EncodeToString(sum[:8])
}

type queueState struct {
	Running []queueItem
	Pending []queueItem
}

func parseQueue(body []byte) (queueState, error) {
	var raw struct {
		Running *[]json.RawMessage `json:"queue_running"`
		Pending *[]json.RawMessage `json:"queue_pending"`
	}
	if err := unmarshalObject(body, &raw); err != nil {
		return queueState{}, err
	}
	if raw.Running == nil || raw.Pending == nil {
		return queueState{}, errors.New("queue_running or queue_pending missing")
	}
	var q queueState
	for _, list := range []struct {
		in  []json.RawMessage
		out *[]queueItem
	}{{*raw.Running, &q.Running}, {*raw.Pending, &q.Pending}} {
		for _, it := range list.in {
			item, err := parseQueueItem(it)
			if err != nil {
				return queueState{}, err
			}
			*list.out = append(*list.out, item)
		}
	}
	return q, nil
}

func parseQueueItem(b json.RawMessage) (queueItem, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return queueItem{}, fmt.Errorf("queue item: %w", err)
	}
	if len(parts) < 2 {
		return queueItem{}, errors.New("queue item: too short")
	}
	var id string
	if err := json.Unmarshal(parts[1], &id); err != nil || id == "" {
		return queueItem{}, errors.New("queue item: prompt id is not a string")
	}
	item := queueItem{ID: promptID(id), Raw: id}
	if len(parts) > 3 {
		item.Extra = parts[3]
	}
	return item, nil
}

// Outcomes of a finished prompt.
const (
	outcomeSuccess     = "success"
	outcomeError       = "error"
	outcomeInterrupted = "interrupted"
)

// historyEntry is one finished prompt from /history.
type historyEntry struct {
	ID      string
	Extra   json.RawMessage
	Outcome string
	Files   []outputFile
	// From the execution_error or execution_interrupted message.
	Message       string
	ExceptionType string
	NodeType      string
	NodeID        string
	// Unix milliseconds from ComfyUI's status messages; 0 when absent.
	StartMS int64
	EndMS   int64
}

// Kinds of output file.
const (
	kindImage = "image"
	kindVideo = "video"
	kindAudio = "audio"
)

// outputFile is one file a prompt produced, as kept in the activity details.
type outputFile struct {
	Path string `json:"path"` // subfolder/filename under ComfyUI's folder for Type
	Type string `json:"type"` // "output" (saved), "temp" (preview), "input"
	Kind string `json:"kind"`
}

// parseHistory decodes /history or /history/{id}. An entry that cannot be
// read is still reported in present, so a prompt is never taken for lost just
// because ComfyUI wrote something odd about it.
func parseHistory(body []byte) (entries []historyEntry, present map[string]bool, err error) {
	var raw map[string]json.RawMessage
	if err := unmarshalObject(body, &raw); err != nil {
		return nil, nil, err
	}
	present = make(map[string]bool, len(raw))
	for rawID, b := range raw {
		id := promptID(rawID)
		present[id] = true
		e, err := parseHistoryEntry(id, b)
		if err != nil {
			continue
		}
		entries = append(entries, e)
	}
	// Map order is random; log finishes in the order they happened.
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].EndMS != entries[j].EndMS {
			return entries[i].EndMS < entries[j].EndMS
		}
		return entries[i].ID < entries[j].ID
	})
	return entries, present, nil
}

func parseHistoryEntry(id string, b json.RawMessage) (historyEntry, error) {
	var raw struct {
		Prompt  []json.RawMessage                     `json:"prompt"`
		Outputs map[string]map[string]json.RawMessage `json:"outputs"`
		Status  *struct {
			StatusStr string            `json:"status_str"`
			Messages  []json.RawMessage `json:"messages"`
		} `json:"status"`
	}
	if err := unmarshalObject(b, &raw); err != nil {
		return historyEntry{}, err
	}
	e := historyEntry{ID: id, Outcome: outcomeSuccess}
	if len(raw.Prompt) > 3 {
		e.Extra = raw.Prompt[3]
	}
	e.Files = outputFiles(raw.Outputs)
	if raw.Status == nil {
		// ComfyUI before mid-2023 kept no status: the prompt ran to the end.
		return e, nil
	}
	if raw.Status.StatusStr == "error" {
		e.Outcome = outcomeError
	}
	for _, m := range raw.Status.Messages {
		var pair []json.RawMessage
		if json.Unmarshal(m, &pair) != nil || len(pair) != 2 {
			continue
		}
		var name string
		if json.Unmarshal(pair[0], &name) != nil {
			continue
		}
		var data struct {
			Timestamp        float64         `json:"timestamp"`
			ExceptionMessage string          `json:"exception_message"`
			ExceptionType    string          `json:"exception_type"`
			NodeType         string          `json:"node_type"`
			NodeID           json.RawMessage `json:"node_id"`
		}
		_ = json.Unmarshal(pair[1], &data) // keep what could be read
		ts := int64(data.Timestamp)
		switch name {
		case "execution_start":
			e.StartMS = ts
		case "execution_success":
			e.EndMS = ts
		case "execution_error", "execution_interrupted":
			e.EndMS = ts
			e.Outcome = outcomeError
			if name == "execution_interrupted" {
				e.Outcome = outcomeInterrupted
			}
			e.Message = data.ExceptionMessage
			e.ExceptionType = data.ExceptionType
			e.NodeType = data.NodeType
			e.NodeID = jsonScalar(data.NodeID)
		}
	}
	return e, nil
}

// videoExt lists the containers ComfyUI's own video nodes write under
// "images" (flagged only by a separate "animated" key).
var videoExt = map[string]bool{".mp4": true, ".webm": true, ".mov": true, ".mkv": true, ".avi": true, ".m4v": true}

// outputFiles lists the files in a history entry's outputs, in node order.
// Core nodes report images, animations and videos under "images",
// VideoHelperSuite under "gifs", some nodes under "videos", audio under
// "audio"; anything else (text, numbers) is not a file.
func outputFiles(outputs map[string]map[string]json.RawMessage) []outputFile {
	nodes := make([]string, 0, len(outputs))
	for id := range outputs {
		nodes = append(nodes, id)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodeLess(nodes[i], nodes[j]) })
	seen := map[outputFile]bool{}
	var files []outputFile
	for _, node := range nodes {
		for _, key := range []string{"images", "gifs", "videos", "audio"} {
			var items []json.RawMessage
			if json.Unmarshal(outputs[node][key], &items) != nil {
				continue
			}
			for _, it := range items {
				var f struct {
					Filename  string `json:"filename"`
					Subfolder string `json:"subfolder"`
					Type      string `json:"type"`
				}
				if json.Unmarshal(it, &f) != nil || f.Filename == "" {
					continue
				}
				of := outputFile{Path: path.Join(f.Subfolder, f.Filename), Type: f.Type, Kind: fileKind(key, f.Filename)}
				if !seen[of] {
					seen[of] = true
					files = append(files, of)
				}
			}
		}
	}
	return files
}

func fileKind(key, filename string) string {
	switch key {
	case "gifs", "videos":
		return kindVideo
	case "audio":
		return kindAudio
	}
	if videoExt[strings.ToLower(path.Ext(filename))] {
		return kindVideo
	}
	return kindImage
}

// nodeLess orders node ids numerically when they are numbers ("9" < "10").
func nodeLess(a, b string) bool {
	if len(a) != len(b) && isDigits(a) && isDigits(b) {
		return len(a) < len(b)
	}
	return a < b
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// maxNameLen caps a workflow name taken from a client's request.
const maxNameLen = 200

// workflowName finds a workflow name in a prompt's extra_data. The stock
// ComfyUI front end sends none (only the graph under extra_pnginfo.workflow),
// so this usually returns "". Scripts and other front ends can set one, and
// these are the places looked at, in order:
//
//	extra_data.workflow_name
//	extra_data.extra_pnginfo.workflow.extra.name
//	extra_data.extra_pnginfo.workflow.name
//
// client_id is not used: it names a browser tab, not a workflow.
func workflowName(extra json.RawMessage) string {
	if len(extra) == 0 {
		return ""
	}
	var x struct {
		WorkflowName json.RawMessage `json:"workflow_name"`
		PNGInfo      struct {
			Workflow struct {
				Name  json.RawMessage `json:"name"`
				Extra struct {
					Name json.RawMessage `json:"name"`
				} `json:"extra"`
			} `json:"workflow"`
		} `json:"extra_pnginfo"`
	}
	_ = json.Unmarshal(extra, &x) // a wrong type in one place must not hide the others
	for _, c := range []json.RawMessage{x.WorkflowName, x.PNGInfo.Workflow.Extra.Name, x.PNGInfo.Workflow.Name} {
		var s string
		if json.Unmarshal(c, &s) != nil {
			continue
		}
		if s = clean(s, maxNameLen); s != "" {
			return s
		}
	}
	return ""
}

// clean makes s fit for a one-line title: control characters and runs of
// white space become one space, and it is cut to at most max bytes on a rune
// boundary.
func clean(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
	}
	return truncate(b.String(), max)
}

func truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// jsonScalar renders a JSON string or number as text ("" for anything else).
func jsonScalar(b json.RawMessage) string {
	var s string
	if json.Unmarshal(b, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(b, &n) == nil {
		return n.String()
	}
	return ""
}

// unmarshalObject decodes a JSON object; null, arrays and scalars are errors,
// because encoding/json would quietly accept null.
func unmarshalObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode json: %w", err)
	}
	return nil
}
