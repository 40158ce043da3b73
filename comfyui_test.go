package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"dashboard/model"
)

// fakePodComfy is one pod's ComfyUI with one prompt running; it counts the
// requests for /history, which only a dashboard that logs needs.
func fakePodComfy(t *testing.T, prompt string, history *atomic.Int64) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/queue":
			w.Write([]byte(`{"queue_running":[[0,"` + prompt + `",{},{},["9"]]],"queue_pending":[]}`))
		case strings.HasPrefix(r.URL.Path, "/history"):
			history.Add(1)
			w.Write([]byte(`{}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Each pod has its own ComfyUI, so a read-only dashboard polls its own for
// the pod panel, while only the writer logs generations.
func TestReadOnlyDashboardWatchesItsOwnComfyUI(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	ws := t.TempDir()
	var histA, histB atomic.Int64
	comfyA := fakePodComfy(t, "prompt-on-a", &histA)
	comfyB := fakePodComfy(t, "prompt-on-b", &histB)
	a := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-a", "--comfyui-url", comfyA.URL})
	b := startBinaryWith(t, bin, ws, []string{"--node-name", "pod-b", "--comfyui-url", comfyB.URL})
	if _, h := health(t, b); h.Mode != "read_only" {
		t.Fatalf("second dashboard: %+v", h)
	}

	type comfy struct {
		Watching     bool `json:"watching"`
		Reachable    bool `json:"reachable"`
		QueueRunning int  `json:"queue_running"`
	}
	var sys struct{ ComfyUI comfy }
	want := comfy{Watching: true, Reachable: true, QueueRunning: 1}
	for _, p := range []*proc{a, b} {
		waitFor(t, 10*time.Second, "ComfyUI reachable on "+p.addr, func() bool {
			getJSON(t, "http://"+p.addr+"/api/system", &sys)
			return sys.ComfyUI == want
		})
	}

	waitFor(t, 10*time.Second, "the writer logs its pod's generation", func() bool {
		var list struct{ Activity []model.Activity }
		getJSON(t, "http://"+a.addr+"/api/activity?type=generation", &list)
		return len(list.Activity) == 1
	})
	var list struct{ Activity []model.Activity }
	getJSON(t, "http://"+a.addr+"/api/activity?limit=100", &list)
	for _, act := range list.Activity {
		if strings.Contains(string(act.Details), "prompt-on-b") {
			t.Errorf("the read-only dashboard logged its prompt: %+v", act)
		}
	}
	if n := histB.Load(); n != 0 {
		t.Errorf("the read-only dashboard read ComfyUI's history %d times", n)
	}
}
