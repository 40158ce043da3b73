package e2e

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// fakeSMI is an nvidia-smi on the PATH of the dashboard under test: a shell
// script that prints what the test last gave it.
type fakeSMI struct {
	t   *testing.T
	dir string
}

func newFakeSMI(t *testing.T, out string) *fakeSMI {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\ncat \"" + filepath.Join(dir, "out") + "\"\n"
	if err := os.WriteFile(filepath.Join(dir, "nvidia-smi"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	f := &fakeSMI{t: t, dir: dir}
	f.answer(out)
	return f
}

// answer changes what nvidia-smi prints from its next run on.
func (f *fakeSMI) answer(out string) {
	f.t.Helper()
	tmp := filepath.Join(f.dir, "out.tmp")
	if err := os.WriteFile(tmp, []byte(out), 0o644); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(f.dir, "out")); err != nil {
		f.t.Fatal(err)
	}
}

// pathEnv is the PATH that finds this nvidia-smi first.
func (f *fakeSMI) pathEnv() string {
	return "PATH=" + f.dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

const twoGPUs = "0, NVIDIA A100-SXM4-80GB, 81920, 40960, 87, 64\n1, NVIDIA RTX 4090, 24564, 2048, 3, 41\n"

// fakeComfy answers ComfyUI's /queue and /history with a queue the test
// sets; it has no WebSocket, so the watcher polls.
type fakeComfy struct {
	srv              *httptest.Server
	mu               sync.Mutex
	running, pending int
}

func newFakeComfy(t *testing.T, running, pending int) *fakeComfy {
	t.Helper()
	f := &fakeComfy{running: running, pending: pending}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/queue":
			f.mu.Lock()
			q := map[string][]any{"queue_running": {}, "queue_pending": {}}
			for i := range f.running {
				q["queue_running"] = append(q["queue_running"], []any{i, "run-" + string(rune('a'+i)), map[string]any{}, map[string]any{}, []string{}})
			}
			for i := range f.pending {
				q["queue_pending"] = append(q["queue_pending"], []any{10 + i, "wait-" + string(rune('a'+i)), map[string]any{}, map[string]any{}, []string{}})
			}
			f.mu.Unlock()
			json.NewEncoder(w).Encode(q)
		case "/history":
			w.Write([]byte("{}"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// set changes the queue ComfyUI shows.
func (f *fakeComfy) set(running, pending int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running, f.pending = running, pending
}
