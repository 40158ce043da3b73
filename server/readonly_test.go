package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"dashboard/model"
)

// modeSwitch stands in for the lease: the test says which mode is current.
type modeSwitch struct {
	mu sync.Mutex
	m  model.Mode
}

func (s *modeSwitch) Mode() model.Mode {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m
}

func (s *modeSwitch) set(m model.Mode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m = m
}

func readOnlyOn(writer string) model.Mode {
	return model.Mode{Mode: model.ModeReadOnly, Node: "pod-b", Writer: &writer}
}

// A read-only dashboard answers every change with 409 read_only naming the
// writer, and keeps answering reads, checks and the WebSocket.
func TestReadOnlyRefusesChanges(t *testing.T) {
	sw := &modeSwitch{m: readOnlyOn("pod-a")}
	e := start(t, options{mode: sw.Mode, presets: `presets:
  OPEN:
    name: Open
    files:
    - path: loras/open.safetensors
      url: https://huggingface.co/acme/open/resolve/main/open.safetensors
`})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/activity", `{"type":"download","status":"completed","title":"x"}`},
		{"POST", "/api/activity/clear", `{}`},
		{"PATCH", "/api/settings", `{"theme":"light"}`},
		{"POST", "/api/settings/hf-token", `{"token":"` + goodToken + `"}`},
		{"DELETE", "/api/settings/hf-token", ""},
		{"POST", "/api/presets/OPEN/install", `{}`},
		{"POST", "/api/downloads/1/cancel", `{}`},
		{"POST", "/api/downloads/1/retry", `{}`},
		{"POST", "/api/presets/OPEN/uninstall", `{}`},
		{"POST", "/api/presets/OPEN/verify", `{}`},
		// A route that does not exist is refused too: by method, not by list.
		{"POST", "/api/presets/OPEN/reinstall", `{}`},
	} {
		var env struct{ Error model.Error }
		status, raw := e.call(t, c.method, c.path, c.body, &env)
		if status != http.StatusConflict || env.Error.Code != model.CodeReadOnly {
			t.Errorf("%s %s: %d %s, want 409 read_only", c.method, c.path, status, raw)
			continue
		}
		if !strings.Contains(env.Error.Message, "the dashboard on pod-a manages this volume") {
			t.Errorf("%s %s: message %q does not name the writer", c.method, c.path, env.Error.Message)
		}
	}
	// Nothing was written.
	var acts struct{ Activity []model.Activity }
	if status, raw := e.call(t, "GET", "/api/activity", "", &acts); status != 200 || len(acts.Activity) != 0 {
		t.Fatalf("activity: %d %s", status, raw)
	}
	var sets struct{ Theme string }
	if e.call(t, "GET", "/api/settings", "", &sets); sets.Theme != "dark" {
		t.Errorf("theme = %q", sets.Theme)
	}
	// Checking a token changes nothing, so it is allowed.
	var check map[string]any
	if status, raw := e.call(t, "POST", "/api/settings/hf-token/test", `{"token":"`+goodToken+`"}`, &check); status != 200 || check["valid"] != true {
		t.Errorf("token test on a read-only dashboard: %d %s", status, raw)
	}

	var h map[string]any
	if status, raw := e.call(t, "GET", "/api/health", "", &h); status != 200 || h["mode"] != "read_only" || h["writer"] != "pod-a" || h["db"] != "ok" || h["status"] != "ok" {
		t.Errorf("health: %d %s", status, raw)
	}
	ws := e.dial(t, nil)
	var snap struct{ Mode model.Mode }
	if err := json.Unmarshal(ws.next(t, "snapshot", 5*time.Second).Data, &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Mode.Mode != model.ModeReadOnly || snap.Mode.WriterNode() != "pod-a" || snap.Mode.Node != "pod-b" {
		t.Errorf("snapshot mode = %+v", snap.Mode)
	}

	// Once writer, the same requests go through.
	sw.set(model.Mode{Mode: model.ModeWriter, Node: "pod-b", Writer: ptr("pod-b")})
	if status, raw := e.call(t, "POST", "/api/activity", `{"type":"download","status":"completed","title":"x"}`, nil); status != http.StatusCreated {
		t.Fatalf("as writer: %d %s", status, raw)
	}
	if e.call(t, "GET", "/api/health", "", &h); h["mode"] != "writer" || h["writer"] != "pod-b" {
		t.Errorf("health as writer: %v", h)
	}
}

func ptr[T any](v T) *T { return &v }

// Behind the 409: a write the store refuses (the lease was lost a moment
// before the mode changed) is a 409 read_only too, and nothing is kept.
func TestStoreRefusalIsReadOnly(t *testing.T) {
	// A key given up front: the store refuses to save one.
	e := start(t, options{sessionKey: key, guard: func(context.Context) error { return model.ReadOnlyError("pod-c") }})
	var env struct{ Error model.Error }
	status, raw := e.call(t, "POST", "/api/activity", `{"type":"download","status":"completed","title":"x"}`, &env)
	if status != http.StatusConflict || env.Error.Code != model.CodeReadOnly || !strings.Contains(env.Error.Message, "pod-c") {
		t.Fatalf("%d %s", status, raw)
	}
	if status, raw = e.call(t, "PATCH", "/api/settings", `{"theme":"light"}`, &env); status != http.StatusConflict {
		t.Fatalf("settings: %d %s", status, raw)
	}
}
