package downloader

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rangeServer is a file server that can misbehave per request and per
// connection: throttle, cut the body, stall, ignore Range, send wrong
// bytes. It records what every request asked for and what it was sent.
type rangeServer struct {
	srv *httptest.Server

	mu          sync.Mutex
	data        []byte
	etag        string // ETag and X-Linked-Etag, quoted; "" → the data's sha256
	ignoreRange bool   // answer 200 with the whole file to a Range
	plainETag   bool   // send the ETag only, no X-Linked-Etag (a storage host, not HuggingFace)
	// trouble decides how to answer a request (numbered from 1, on
	// connections numbered from 1).
	trouble func(r *served) trouble
	reqs    []*served
	conns   atomic.Int64
}

type trouble struct {
	rate       int64 // bytes a second for this answer; 0: as fast as it goes
	cutAfter   int64 // end the body after this many bytes; 0: never
	stallAfter int64 // then send nothing until the client leaves; 0: never
	status     int   // answer with this status and no file
	corrupt    bool  // flip the bytes it sends
}

// served is one request as the server saw it.
type served struct {
	n, conn        int
	method, path   string
	auth, rng, ifR string
	query          string
	from, to       int64 // asked for [from, to)
	sent           atomic.Int64
}

type connKey struct{}

func newRangeServer(t *testing.T, data []byte) *rangeServer {
	rs := &rangeServer{data: data}
	rs.srv = httptest.NewUnstartedServer(http.HandlerFunc(rs.serve))
	rs.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, int(rs.conns.Add(1)))
	}
	rs.srv.Start()
	t.Cleanup(func() {
		rs.srv.CloseClientConnections()
		rs.srv.Close()
	})
	return rs
}

func (rs *rangeServer) URL() string { return rs.srv.URL }

func (rs *rangeServer) set(data []byte, etag string) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.data, rs.etag = data, etag
}

func (rs *rangeServer) requests() []*served {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return append([]*served(nil), rs.reqs...)
}

// sentSpans is what the server sent, over all requests or those from since.
func (rs *rangeServer) sentSpans(since int) spans {
	var s spans
	for _, r := range rs.requests()[since:] {
		s = s.add(span{r.from, r.from + r.sent.Load()})
	}
	return s
}

func (rs *rangeServer) serve(w http.ResponseWriter, r *http.Request) {
	conn, _ := r.Context().Value(connKey{}).(int)
	rs.mu.Lock()
	data, etag, plain := rs.data, rs.etag, rs.plainETag
	if etag == "" {
		etag = `"` + sha(data) + `"`
	}
	sv := &served{n: len(rs.reqs) + 1, conn: conn, method: r.Method, path: r.URL.Path, query: r.URL.RawQuery,
		auth: r.Header.Get("Authorization"), rng: r.Header.Get("Range"), ifR: r.Header.Get("If-Range")}
	rs.reqs = append(rs.reqs, sv)
	var tr trouble
	size := int64(len(data))
	from, to, ranged := int64(0), size, false
	if v, ok := strings.CutPrefix(sv.rng, "bytes="); ok && !rs.ignoreRange && (sv.ifR == "" || sv.ifR == etag) {
		a, b, _ := strings.Cut(v, "-")
		from, _ = strconv.ParseInt(a, 10, 64)
		if b != "" {
			last, _ := strconv.ParseInt(b, 10, 64)
			to = min(last+1, size)
		}
		ranged = true
	}
	sv.from, sv.to = from, to
	if rs.trouble != nil {
		tr = rs.trouble(sv)
	}
	rs.mu.Unlock()

	w.Header().Set("ETag", etag)
	if !plain {
		w.Header().Set("X-Linked-Etag", etag)
	}
	w.Header().Set("Accept-Ranges", "bytes")
	if tr.status != 0 {
		http.Error(w, http.StatusText(tr.status), tr.status)
		return
	}
	if ranged && from >= size {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	w.Header().Set("Content-Length", strconv.FormatInt(to-from, 10))
	if ranged {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, size))
		w.WriteHeader(http.StatusPartialContent)
	} else {
		w.WriteHeader(http.StatusOK)
	}
	if r.Method == http.MethodHead {
		return
	}
	fl := w.(http.Flusher)
	began := time.Now()
	const piece = 32 << 10
	buf := make([]byte, piece)
	for off := from; off < to; {
		sent := off - from
		if tr.cutAfter > 0 && sent >= tr.cutAfter {
			return // the body ends short: the client sees the connection cut
		}
		if tr.stallAfter > 0 && sent >= tr.stallAfter {
			fl.Flush()
			<-r.Context().Done()
			return
		}
		n := min(int64(piece), to-off)
		if tr.cutAfter > 0 {
			n = min(n, tr.cutAfter-sent)
		}
		if tr.stallAfter > 0 {
			n = min(n, tr.stallAfter-sent)
		}
		copy(buf, data[off:off+n])
		if tr.corrupt {
			for i := range buf[:n] {
				buf[i] ^= 0xff
			}
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return
		}
		off += n
		sv.sent.Add(n)
		if tr.rate > 0 {
			fl.Flush()
			if ahead := time.Duration(float64(off-from)/float64(tr.rate)*float64(time.Second)) - time.Since(began); ahead > 0 {
				select {
				case <-time.After(ahead):
				case <-r.Context().Done():
					return
				}
			}
		}
	}
}

// gets returns the GET requests for path.
func (rs *rangeServer) gets(path string) []*served {
	var out []*served
	for _, r := range rs.requests() {
		if r.method == http.MethodGet && r.path == path {
			out = append(out, r)
		}
	}
	return out
}

// stateSpans reads the spans the state file beside rel's .part names.
func stateSpans(t *testing.T, models, rel string) spans {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(models, rel+stateSuffix))
	if err != nil {
		return nil
	}
	var st rangeState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file: %v: %s", err, b)
	}
	return spansFromState(st.Done)
}

// stateDone is how many bytes the state file beside rel's .part names.
func stateDone(t *testing.T, models, rel string) int64 {
	return stateSpans(t, models, rel).bytes()
}

// bigPreset is a preset of one file fetched over many connections.
func bigPreset(path, url string, size int) string {
	return fmt.Sprintf("presets:\n  BIG:\n    name: Big\n    files:\n    - {path: %s, url: %q, size: %d}\n", path, url, size)
}
