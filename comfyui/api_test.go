package comfyui

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseQueue(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		running []string
		pending []string
		extra   string // extra_data of the first running item
		wantErr bool
	}{
		{name: "empty", body: `{"queue_running":[],"queue_pending":[]}`},
		{name: "items", body: `{"queue_running":[[3,"a",{},{"client_id":"c"},["9"]]],"queue_pending":[[4,"b",{},{},["9"]],[5,"c",{},{},[]]]}`,
			running: []string{"a"}, pending: []string{"b", "c"}, extra: `{"client_id":"c"}`},
		{name: "sixth element of sensitive data", body: `{"queue_running":[[3,"a",{},{},["9"],{"api_key":"k"}]],"queue_pending":[]}`, running: []string{"a"}, extra: `{}`},
		{name: "html", body: `<html>busy</html>`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "array", body: `[]`, wantErr: true},
		{name: "missing pending", body: `{"queue_running":[]}`, wantErr: true},
		{name: "wrong type", body: `{"queue_running":"x","queue_pending":[]}`, wantErr: true},
		{name: "item not an array", body: `{"queue_running":[{"id":"a"}],"queue_pending":[]}`, wantErr: true},
		{name: "id not a string", body: `{"queue_running":[[1,2,{},{}]],"queue_pending":[]}`, wantErr: true},
		{name: "short item", body: `{"queue_running":[[1]],"queue_pending":[]}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parseQueue([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got := ids(q.Running); got != strings.Join(tt.running, ",") {
				t.Errorf("running = %s", got)
			}
			if got := ids(q.Pending); got != strings.Join(tt.pending, ",") {
				t.Errorf("pending = %s", got)
			}
			if len(q.Running) > 0 && string(q.Running[0].Extra) != tt.extra {
				t.Errorf("extra = %s", q.Running[0].Extra)
			}
		})
	}
}

func ids(items []queueItem) string {
	var s []string
	for _, it := range items {
		s = append(s, it.ID)
	}
	return strings.Join(s, ",")
}

func TestParseHistory(t *testing.T) {
	body := `{
	  "ok": {"prompt":[1,"ok",{},{"workflow_name":"W"},["9"]],
	         "outputs":{"10":{"images":[{"filename":"b.png","subfolder":"s","type":"output"}]},
	                    "9":{"images":[{"filename":"a.png","subfolder":"","type":"output"},{"filename":"a.png","subfolder":"","type":"output"}],
	                         "animated":[false],"text":["hi"]},
	                    "11":{"gifs":[{"filename":"v.webp","subfolder":"","type":"output","format":"image/webp"}],
	                          "images":[{"filename":"w.webm","subfolder":"","type":"output"}],
	                          "audio":[{"filename":"s.flac","subfolder":"audio","type":"output"}, "junk", 5]}},
	         "status":{"status_str":"success","completed":true,"messages":[["execution_start",{"timestamp":1000}],["execution_success",{"timestamp":4500}]]}},
	  "bad": {"prompt":[2,"bad",{},{},[]],"outputs":{},
	         "status":{"status_str":"error","completed":false,"messages":[["execution_start",{"timestamp":2000}],
	           ["execution_error",{"node_id":7,"node_type":"KSampler","exception_message":"OOM","exception_type":"RuntimeError","timestamp":9000}]]}},
	  "stop": {"prompt":[3,"stop",{},{},[]],"outputs":{},
	         "status":{"status_str":"error","completed":false,"messages":[["execution_interrupted",{"node_id":"4","node_type":"VAEDecode","timestamp":8000}], "odd", [1,2]]}},
	  "legacy": {"prompt":[4,"legacy",{},{},[]],"outputs":{"1":{"images":[{"filename":"x.png","subfolder":"","type":"output"}]}}},
	  "broken": "not an entry"
	}`
	entries, present, err := parseHistory([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(present) != 5 || !present["broken"] {
		t.Errorf("present = %v", present)
	}
	byID := map[string]historyEntry{}
	var order []string
	for _, e := range entries {
		byID[e.ID] = e
		order = append(order, e.ID)
	}
	if got := strings.Join(order, ","); got != "legacy,ok,stop,bad" {
		t.Errorf("order = %s, want by end time", got)
	}
	ok := byID["ok"]
	if ok.Outcome != outcomeSuccess || ok.StartMS != 1000 || ok.EndMS != 4500 || workflowName(ok.Extra) != "W" {
		t.Errorf("ok = %+v", ok)
	}
	files, _ := json.Marshal(ok.Files)
	want := `[{"path":"a.png","type":"output","kind":"image"},{"path":"s/b.png","type":"output","kind":"image"},` +
		`{"path":"w.webm","type":"output","kind":"video"},{"path":"v.webp","type":"output","kind":"video"},` +
		`{"path":"audio/s.flac","type":"output","kind":"audio"}]`
	if string(files) != want {
		t.Errorf("files =\n%s\nwant\n%s", files, want)
	}
	if bad := byID["bad"]; bad.Outcome != outcomeError || bad.Message != "OOM" || bad.NodeType != "KSampler" || bad.NodeID != "7" || bad.ExceptionType != "RuntimeError" {
		t.Errorf("bad = %+v", bad)
	}
	if stop := byID["stop"]; stop.Outcome != outcomeInterrupted || stop.NodeType != "VAEDecode" || stop.EndMS != 8000 {
		t.Errorf("stop = %+v", stop)
	}
	if legacy := byID["legacy"]; legacy.Outcome != outcomeSuccess || len(legacy.Files) != 1 {
		t.Errorf("legacy = %+v", legacy)
	}

	for _, garbage := range []string{``, `null`, `[]`, `"x"`, `<html>`, `{"a":`} {
		if _, _, err := parseHistory([]byte(garbage)); err == nil {
			t.Errorf("parseHistory(%q) accepted", garbage)
		}
	}
	if entries, present, err := parseHistory([]byte(`{}`)); err != nil || len(entries) != 0 || len(present) != 0 {
		t.Errorf("empty history: %v %v %v", entries, present, err)
	}
}

func TestWorkflowName(t *testing.T) {
	tests := []struct{ extra, want string }{
		{``, ""},
		{`{}`, ""},
		{`{"client_id":"abc"}`, ""},
		{`{"workflow_name":"  My   flow\t"}`, "My flow"},
		{`{"extra_pnginfo":{"workflow":{"extra":{"name":"From extra"},"nodes":[]}}}`, "From extra"},
		{`{"extra_pnginfo":{"workflow":{"name":"From workflow"}}}`, "From workflow"},
		{`{"workflow_name":"first","extra_pnginfo":{"workflow":{"extra":{"name":"second"}}}}`, "first"},
		{`{"workflow_name":42,"extra_pnginfo":{"workflow":{"extra":{"name":"typed"}}}}`, "typed"},
		{`{"workflow_name":"   "}`, ""},
		{`"not an object"`, ""},
		{`{"workflow_name":"` + strings.Repeat("é", 150) + `"}`, strings.Repeat("é", 98) + "…"},
	}
	for _, tt := range tests {
		if got := workflowName(json.RawMessage(tt.extra)); got != tt.want {
			t.Errorf("workflowName(%s) = %q, want %q", tt.extra, got, tt.want)
		}
	}
}

func TestCompletedTitle(t *testing.T) {
	tests := []struct {
		images, videos, audio int
		want                  string
	}{
		{0, 0, 0, "Generation finished (no outputs)"},
		{1, 0, 0, "1 image generated"},
		{4, 0, 0, "4 images generated"},
		{0, 1, 0, "1 video generated"},
		{2, 1, 0, "2 images and 1 video generated"},
		{0, 0, 3, "3 audio files generated"},
		{1, 2, 1, "1 image, 2 videos and 1 audio file generated"},
	}
	for _, tt := range tests {
		if got := completedTitle(tt.images, tt.videos, tt.audio); got != tt.want {
			t.Errorf("completedTitle(%d,%d,%d) = %q, want %q", tt.images, tt.videos, tt.audio, got, tt.want)
		}
	}
}

func TestFinishedActivity(t *testing.T) {
	tests := []struct {
		name     string
		entry    historyEntry
		wname    string
		observed time.Duration
		title    string
		subtitle string
		details  string
	}{
		{"previews are not outputs",
			historyEntry{ID: "p", Outcome: outcomeSuccess, Files: []outputFile{{"a.png", "temp", kindImage}}}, "", 0,
			"Generation finished (no outputs)", "p",
			`{"prompt_id":"p","images":0,"videos":0,"audio":0,"outputs":[{"path":"a.png","type":"temp","kind":"image"}]}`},
		{"observed duration without timestamps",
			historyEntry{ID: "p", Outcome: outcomeSuccess, Files: []outputFile{{"v.mp4", "output", kindVideo}}}, "Clip", 2500 * time.Millisecond,
			"1 video generated", "Clip",
			`{"prompt_id":"p","workflow":"Clip","images":0,"videos":1,"audio":0,"outputs":[{"path":"v.mp4","type":"output","kind":"video"}],"duration_seconds":2.5}`},
		{"error",
			historyEntry{ID: "p", Outcome: outcomeError, Message: "boom", NodeType: "KSampler", NodeID: "3", StartMS: 1000, EndMS: 3000}, "", 0,
			"Generation failed", "p: boom",
			`{"prompt_id":"p","error":"boom","node_type":"KSampler","node_id":"3","duration_seconds":2}`},
		{"error without message",
			historyEntry{ID: "p", Outcome: outcomeError, ExceptionType: "KeyError"}, "", 0,
			"Generation failed", "p: KeyError", `{"prompt_id":"p","error":"KeyError","exception_type":"KeyError"}`},
		{"cancelled",
			historyEntry{ID: "p", Outcome: outcomeInterrupted, NodeType: "VAEDecode"}, "W", 0,
			"Generation interrupted", "W: interrupted", `{"prompt_id":"p","workflow":"W","error":"interrupted","node_type":"VAEDecode"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := finishedActivity(tt.entry, tt.wname, tt.observed)
			if a.Title != tt.title || a.Subtitle != tt.subtitle || string(a.Details) != tt.details {
				t.Errorf("got %q / %q / %s\nwant %q / %q / %s", a.Title, a.Subtitle, a.Details, tt.title, tt.subtitle, tt.details)
			}
		})
	}

	long := historyEntry{ID: "p", Outcome: outcomeError, Message: strings.Repeat("x", 10_000)}
	a := finishedActivity(long, strings.Repeat("n", maxNameLen), 0)
	if len(a.Subtitle) > 1000 || len(a.Details) > maxDetailMessage+500 {
		t.Errorf("subtitle %d bytes, details %d bytes: not capped", len(a.Subtitle), len(a.Details))
	}

	many := historyEntry{ID: "p", Outcome: outcomeSuccess}
	for range maxDetailFiles + 5 {
		many.Files = append(many.Files, outputFile{"a.png", "output", kindImage})
	}
	var d finishedDetails
	_ = json.Unmarshal(finishedActivity(many, "", 0).Details, &d)
	if d.Images != maxDetailFiles+5 || len(d.Outputs) != maxDetailFiles || !d.OutputsTruncated {
		t.Errorf("images %d, listed %d, truncated %v", d.Images, len(d.Outputs), d.OutputsTruncated)
	}
}

func TestClean(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 10, "plain"},
		{" a\n\tb \x00c ", 10, "a b c"},
		{"abcdefghijkl", 10, "abcdefg…"},
		{"ééééé", 8, "éé…"},
		{"bad\xffbyte", 20, "bad byte"},
	}
	for _, tt := range tests {
		if got := clean(tt.in, tt.max); got != tt.want || len(got) > tt.max {
			t.Errorf("clean(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}

func TestDelay(t *testing.T) {
	w := &Watcher{poll: 2 * time.Second, maxBackoff: 60 * time.Second}
	for fails, want := range []time.Duration{2, 2, 4, 8, 16, 32, 60, 60} {
		if got := w.delay(fails); got != want*time.Second {
			t.Errorf("delay(%d) = %v, want %v", fails, got, want*time.Second)
		}
	}
	if got := w.delay(1000); got != 60*time.Second {
		t.Errorf("delay(1000) = %v", got)
	}
}
