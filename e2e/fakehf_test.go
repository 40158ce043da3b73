package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// goodToken is the one token the fake HuggingFace accepts.
const goodToken = "hf_e2eGoodToken0123456789"

// hfFile is one file the fake serves.
type hfFile struct {
	data  []byte
	sha   string
	gated bool          // 401 without the good token
	deny  bool          // 403 even with it: the licence is not accepted
	chunk int           // bytes per write
	pause time.Duration // sleep between writes, so progress is visible
}

// fakeHF stands in for huggingface.co: whoami-v2 and resolve/main downloads.
type fakeHF struct {
	srv *httptest.Server

	mu       sync.Mutex
	files    map[string]*hfFile // path ("/org/repo/resolve/main/file") → file
	authSeen map[string]string  // path → Authorization of the last GET
	revoked  bool               // gated files refuse even the good token
}

func newFakeHF(t *testing.T) *fakeHF {
	t.Helper()
	f := &fakeHF{files: map[string]*hfFile{}, authSeen: map[string]string{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		// Slow transfers may still be running when a test ends.
		f.srv.CloseClientConnections()
		f.srv.Close()
	})
	return f
}

// add serves size bytes at https://huggingface.co/{repo}/resolve/main/{name}.
func (f *fakeHF) add(repo, name string, size int, gated bool, chunk int, pause time.Duration) string {
	return f.addFile(repo, name, &hfFile{data: make([]byte, size), gated: gated, chunk: chunk, pause: pause})
}

// deny serves a file that answers 403 to everyone, as a gated repository does
// until its licence is accepted.
func (f *fakeHF) deny(repo, name string) {
	f.addFile(repo, name, &hfFile{data: make([]byte, 1), gated: true, deny: true, chunk: 1})
}

func (f *fakeHF) addFile(repo, name string, file *hfFile) string {
	for i := range file.data {
		file.data[i] = byte(i*7 + len(name))
	}
	sum := sha256.Sum256(file.data)
	file.sha = hex.EncodeToString(sum[:])
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files["/"+repo+"/resolve/main/"+name] = file
	return file.sha
}

// revoke makes gated downloads refuse the good token, as HuggingFace does
// for a token revoked after it was saved (whoami still answers, for the
// test's convenience: a new token is "the good one" again after unrevoke).
func (f *fakeHF) revoke(v bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = v
}

func (f *fakeHF) lastAuth(path string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.authSeen[path]
}

func (f *fakeHF) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	if r.URL.Path == "/api/whoami-v2" {
		if auth != "Bearer "+goodToken {
			http.Error(w, `{"error":"Invalid credentials in Authorization header"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"name":"alice","auth":{"accessToken":{"role":"read"}}}`)
		return
	}
	f.mu.Lock()
	file := f.files[r.URL.Path]
	if r.Method == http.MethodGet {
		f.authSeen[r.URL.Path] = auth
	}
	revoked := f.revoked
	f.mu.Unlock()
	if file == nil || !strings.Contains(r.URL.Path, "/resolve/main/") {
		http.Error(w, "Entry not found", http.StatusNotFound)
		return
	}
	if file.gated && (auth != "Bearer "+goodToken || revoked) {
		http.Error(w, "Access to this model is restricted", http.StatusUnauthorized)
		return
	}
	if file.deny {
		http.Error(w, "Access to model is restricted and you are not in the authorized list", http.StatusForbidden)
		return
	}
	w.Header().Set("ETag", `"`+file.sha+`"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(file.data)))
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		return
	}
	fl, _ := w.(http.Flusher)
	for off := 0; off < len(file.data); off += file.chunk {
		end := min(off+file.chunk, len(file.data))
		if _, err := w.Write(file.data[off:end]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(file.pause):
		}
	}
}
