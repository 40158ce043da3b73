package e2e

import (
	"bytes"
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

// goodCivitaiToken is the one key the fake Civitai accepts.
const goodCivitaiToken = "civE2eGoodKey0123456789abcdef"

// civFile is one model version the fake Civitai serves.
type civFile struct {
	data  []byte
	sha   string
	login bool // 401 without the good token
}

// fakeCivitai stands in for civitai.com: /api/v1/me,
// /api/v1/model-versions/{id} (the SHA-256 in upper case, as Civitai writes
// it) and /api/download/models/{id}, which redirects to a storage host at
// another address. That host answers 400 to any Authorization header, as
// Cloudflare R2 does, and honours Range.
type fakeCivitai struct {
	api, storage *httptest.Server

	mu          sync.Mutex
	versions    map[int64]*civFile
	storageAuth []string // Authorization headers the storage host saw
	downloads   []string // Authorization headers of download requests to Civitai
}

func newFakeCivitai(t *testing.T) *fakeCivitai {
	t.Helper()
	f := &fakeCivitai{versions: map[int64]*civFile{}}
	f.storage = httptest.NewServer(http.HandlerFunc(f.serveStorage))
	f.api = httptest.NewServer(http.HandlerFunc(f.serveAPI))
	t.Cleanup(func() {
		f.api.CloseClientConnections()
		f.api.Close()
		f.storage.CloseClientConnections()
		f.storage.Close()
	})
	return f
}

// add serves size bytes as model version id; it returns their SHA-256.
func (f *fakeCivitai) add(id int64, size int, login bool) string {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*13 + int(id))
	}
	sum := sha256.Sum256(data)
	file := &civFile{data: data, sha: hex.EncodeToString(sum[:]), login: login}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[id] = file
	return file.sha
}

func (f *fakeCivitai) version(path, prefix string) (*civFile, int64) {
	id, _ := strconv.ParseInt(strings.TrimPrefix(path, prefix), 10, 64)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.versions[id], id
}

func (f *fakeCivitai) serveAPI(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	good := auth == "Bearer "+goodCivitaiToken
	w.Header().Set("Content-Type", "application/json")
	unauthorized := func() {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"Unauthorized","message":"The creator of this asset requires you to be logged in to download it"}`)
	}
	switch {
	case r.URL.Path == "/api/v1/me":
		if !good {
			unauthorized()
			return
		}
		fmt.Fprint(w, `{"id":4242,"username":"carol","tier":"free","status":"active"}`)
	case strings.HasPrefix(r.URL.Path, "/api/v1/model-versions/"):
		v, id := f.version(r.URL.Path, "/api/v1/model-versions/")
		if v == nil {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"Model version not found"}`)
			return
		}
		fmt.Fprintf(w, `{"id":%d,"files":[{"name":"m.safetensors","type":"Model","sizeKB":%g,"primary":true,"metadata":{"format":"SafeTensor","fp":"fp16","size":"pruned"},"hashes":{"SHA256":%q}}]}`,
			id, float64(len(v.data))/1024, strings.ToUpper(v.sha))
	case strings.HasPrefix(r.URL.Path, "/api/download/models/"):
		v, id := f.version(r.URL.Path, "/api/download/models/")
		f.mu.Lock()
		f.downloads = append(f.downloads, auth)
		f.mu.Unlock()
		switch {
		case v == nil:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":"Not found"}`)
		case (v.login && !good) || (auth != "" && !good):
			unauthorized()
		default:
			http.Redirect(w, r, fmt.Sprintf("%s/models/%d/m.safetensors?X-Amz-Expires=86400&X-Amz-Signature=e2esig", f.storage.URL, id), http.StatusTemporaryRedirect)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"error":"Not found"}`)
	}
}

func (f *fakeCivitai) serveStorage(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.storageAuth = append(f.storageAuth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	if r.Header.Get("Authorization") != "" {
		http.Error(w, "<Error><Code>InvalidArgument</Code><Message>Authorization</Message></Error>", http.StatusBadRequest)
		return
	}
	var id int64
	fmt.Sscanf(r.URL.Path, "/models/%d/", &id)
	f.mu.Lock()
	v := f.versions[id]
	f.mu.Unlock()
	if v == nil || r.URL.Query().Get("X-Amz-Signature") != "e2esig" {
		http.Error(w, "<Error><Code>AccessDenied</Code></Error>", http.StatusForbidden)
		return
	}
	w.Header().Set("ETag", fmt.Sprintf(`"r2-%d"`, id))
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(v.data))
}

// seen returns the Authorization headers the storage host and Civitai's
// download URL were sent.
func (f *fakeCivitai) seen() (storage, downloads []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.storageAuth...), append([]string(nil), f.downloads...)
}
