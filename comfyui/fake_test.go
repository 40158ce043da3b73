package comfyui

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"dashboard/model"
)

// fakeComfy stands in for ComfyUI on a real loopback port that survives
// stop/start, so "ComfyUI restarted" is a refused connection, not a 500.
type fakeComfy struct {
	t    *testing.T
	addr string

	mu        sync.Mutex
	srv       *http.Server
	down      chan struct{} // closed when the server stops: ends WebSocket handlers
	running   []fakeItem
	pending   []fakeItem
	history   []fakeItem // oldest first, like ComfyUI's dict
	mode      string     // "" answers properly; see answer() and handleHistory
	noWS      bool
	queueHits int
	histBytes int // bytes of /history and /history/{id} answers
	wsConns   int
	wsLive    map[chan struct{}]bool
	number    int
	unlisted  map[string]bool // left out of /history, as if beyond max_items
	prefix    string          // the path ComfyUI is served under, "" for the root
}

type fakeItem struct {
	id    string
	extra any
	entry any // history only
}

func newFakeComfy(t *testing.T) *fakeComfy {
	t.Helper()
	return newFakeComfyAt(t, "")
}

// newFakeComfyAt serves ComfyUI under a path prefix, as behind a proxy.
func newFakeComfyAt(t *testing.T, prefix string) *fakeComfy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeComfy{t: t, addr: ln.Addr().String(), wsLive: map[chan struct{}]bool{}, unlisted: map[string]bool{}, prefix: prefix}
	f.serve(ln)
	t.Cleanup(f.stop)
	return f
}

func (f *fakeComfy) url() string { return "http://" + f.addr }

func (f *fakeComfy) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+f.prefix+"/queue", f.handleQueue)
	mux.HandleFunc("GET "+f.prefix+"/history", f.handleHistory)
	mux.HandleFunc("GET "+f.prefix+"/history/{id}", f.handleHistoryItem)
	mux.HandleFunc("GET "+f.prefix+"/ws", f.handleWS)
	f.mu.Lock()
	f.srv = &http.Server{Handler: mux}
	f.down = make(chan struct{})
	srv := f.srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// start brings a stopped fake back on the same port.
func (f *fakeComfy) start() {
	f.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatalf("restart fake comfyui: %v", err)
	}
	f.serve(ln)
}

// stop refuses connections from now on, like a ComfyUI that exited.
func (f *fakeComfy) stop() {
	f.mu.Lock()
	srv, down := f.srv, f.down
	f.srv = nil
	f.mu.Unlock()
	if srv == nil {
		return
	}
	close(down)
	_ = srv.Close()
}

// crash stops ComfyUI and forgets its queue and history, as a restart does.
func (f *fakeComfy) crash() {
	f.stop()
	f.mu.Lock()
	f.running, f.pending, f.history = nil, nil, nil
	f.mu.Unlock()
}

func (f *fakeComfy) setMode(m string) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

func (f *fakeComfy) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queueHits
}

func (f *fakeComfy) wsCount() (conns, live int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wsConns, len(f.wsLive)
}

// run makes a prompt the one executing.
func (f *fakeComfy) run(id string, extra any) {
	f.mu.Lock()
	f.running = append(f.running, fakeItem{id: id, extra: extra})
	f.mu.Unlock()
}

func (f *fakeComfy) queue(id string) {
	f.mu.Lock()
	f.pending = append(f.pending, fakeItem{id: id})
	f.mu.Unlock()
}

// finish moves a prompt into the history, with the given outputs and status.
func (f *fakeComfy) finish(id string, extra any, outputs map[string]any, status map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.finishLocked(id, extra, outputs, status)
}

func (f *fakeComfy) finishLocked(id string, extra any, outputs map[string]any, status map[string]any) {
	for i, it := range f.running {
		if it.id == id {
			extra = it.extra
			f.running = append(f.running[:i], f.running[i+1:]...)
			break
		}
	}
	f.number++
	f.history = append(f.history, fakeItem{id: id, entry: map[string]any{
		"prompt":  []any{f.number, id, map[string]any{"3": map[string]any{"class_type": "KSampler"}}, extra, []string{"9"}},
		"outputs": outputs,
		"status":  status,
	}})
}

// setEntry replaces a history entry with anything, readable or not.
func (f *fakeComfy) setEntry(id string, entry any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.history {
		if f.history[i].id == id {
			f.history[i].entry = entry
		}
	}
}

// unlist keeps a history entry out of /history; /history/{id} still has it.
func (f *fakeComfy) unlist(id string) {
	f.mu.Lock()
	f.unlisted[id] = true
	f.mu.Unlock()
}

// vanish drops a running prompt without a history entry.
func (f *fakeComfy) vanish(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, it := range f.running {
		if it.id == id {
			f.running = append(f.running[:i], f.running[i+1:]...)
			return
		}
	}
}

// broadcast sends a status frame to every WebSocket client.
func (f *fakeComfy) broadcast() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.wsLive {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func successStatus(startMS, endMS int64) map[string]any {
	return map[string]any{"status_str": "success", "completed": true, "messages": []any{
		[]any{"execution_start", map[string]any{"prompt_id": "x", "timestamp": startMS}},
		[]any{"execution_cached", map[string]any{"nodes": []string{}, "timestamp": startMS}},
		[]any{"execution_success", map[string]any{"prompt_id": "x", "timestamp": endMS}},
	}}
}

func errorStatus(startMS, endMS int64, msg, nodeType string) map[string]any {
	return map[string]any{"status_str": "error", "completed": false, "messages": []any{
		[]any{"execution_start", map[string]any{"prompt_id": "x", "timestamp": startMS}},
		[]any{"execution_error", map[string]any{
			"prompt_id": "x", "node_id": "3", "node_type": nodeType, "executed": []string{},
			"exception_message": msg, "exception_type": "torch.OutOfMemoryError",
			"traceback": []string{"File x"}, "current_inputs": map[string]any{}, "current_outputs": map[string]any{},
			"timestamp": endMS,
		}},
	}}
}

func images(kind string, n int, names ...string) map[string]any {
	var list []any
	for i := range n {
		name := "ComfyUI_" + strconv.Itoa(i) + ".png"
		if len(names) > 0 {
			name = names[i]
		}
		list = append(list, map[string]any{"filename": name, "subfolder": "", "type": kind})
	}
	return map[string]any{"images": list}
}

func msNow() int64 { return time.Now().UnixMilli() }

// answer writes the mode's garbage and reports whether it did.
func (f *fakeComfy) answer(w http.ResponseWriter) bool {
	switch f.mode {
	case "garbage":
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>502 Bad Gateway</html>"))
	case "shape":
		_, _ = w.Write([]byte(`{"queue_running":"busy","queue_pending":7}`))
	case "null":
		_, _ = w.Write([]byte(`null`))
	case "500":
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
	default:
		return false
	}
	return true
}

func (f *fakeComfy) handleQueue(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queueHits++
	if f.answer(w) {
		return
	}
	item := func(it fakeItem, n int) []any {
		// Real entries carry a graph and outputs_to_execute too.
		return []any{n, it.id, map[string]any{"3": map[string]any{"class_type": "KSampler"}}, it.extra, []string{"9"}}
	}
	running, pending := []any{}, []any{}
	for i, it := range f.running {
		running = append(running, item(it, i))
	}
	for i, it := range f.pending {
		pending = append(pending, item(it, 100+i))
	}
	writeJSON(w, map[string]any{"queue_running": running, "queue_pending": pending})
}

func (f *fakeComfy) handleHistory(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.mode == "history" { // a healthy queue, a broken history
		_, _ = w.Write([]byte(`[{"prompt":[]}]`))
		return
	}
	if f.answer(w) {
		return
	}
	items := f.history
	if s := r.URL.Query().Get("max_items"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			http.Error(w, "bad max_items", http.StatusBadRequest)
			return
		}
		if n < len(items) {
			items = items[len(items)-n:]
		}
	}
	out := map[string]any{}
	for _, it := range items {
		if !f.unlisted[it.id] {
			out[it.id] = it.entry
		}
	}
	f.writeHistory(w, out)
}

// writeHistory answers with a history dict and counts its bytes.
func (f *fakeComfy) writeHistory(w http.ResponseWriter, out map[string]any) {
	b, err := json.Marshal(out)
	if err != nil {
		f.t.Errorf("encode history: %v", err)
		return
	}
	f.histBytes += len(b)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// historyBytes is how many bytes of history the fake has served.
func (f *fakeComfy) historyBytes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.histBytes
}

func (f *fakeComfy) handleHistoryItem(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answer(w) {
		return
	}
	out := map[string]any{}
	for _, it := range f.history {
		if it.id == r.PathValue("id") {
			out[it.id] = it.entry
		}
	}
	f.writeHistory(w, out)
}

func (f *fakeComfy) handleWS(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.noWS {
		f.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	down := f.down
	f.mu.Unlock()
	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer conn.CloseNow()
	notify := make(chan struct{}, 1)
	f.mu.Lock()
	f.wsConns++
	f.wsLive[notify] = true
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.wsLive, notify)
		f.mu.Unlock()
	}()
	ctx := conn.CloseRead(context.Background())
	status := []byte(`{"type":"status","data":{"status":{"exec_info":{"queue_remaining":0}},"sid":"dash"}}`)
	if conn.Write(ctx, websocket.MessageText, status) != nil {
		return
	}
	// A preview larger than the default read limit, then frames to ignore.
	preview := make([]byte, 200<<10)
	if conn.Write(ctx, websocket.MessageBinary, preview) != nil ||
		conn.Write(ctx, websocket.MessageText, []byte(`{"type":"progress","data":{"value":1,"max":20}}`)) != nil ||
		conn.Write(ctx, websocket.MessageText, []byte(`not json`)) != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-down:
			return
		case <-notify:
			if conn.Write(ctx, websocket.MessageBinary, preview) != nil ||
				conn.Write(ctx, websocket.MessageText, status) != nil {
				return
			}
		}
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// recorder is an in-memory activity log that validates like the real one.
type recorder struct {
	mu   sync.Mutex
	acts []model.Activity
	fail bool
}

func (r *recorder) Record(_ context.Context, a model.Activity) (model.Activity, error) {
	if msg := a.Check(); msg != "" {
		return model.Activity{}, errors.New(msg)
	}
	if !json.Valid(a.Details) {
		return model.Activity{}, errors.New("details are not JSON")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail {
		return model.Activity{}, errors.New("database is locked")
	}
	a.ID = int64(len(r.acts) + 1)
	r.acts = append(r.acts, a)
	return a, nil
}

func (r *recorder) all() []model.Activity {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]model.Activity(nil), r.acts...)
}

func (r *recorder) where(typ model.ActivityType, status model.ActivityStatus) []model.Activity {
	var out []model.Activity
	for _, a := range r.all() {
		if a.Type == typ && status == a.Status {
			out = append(out, a)
		}
	}
	return out
}

func (r *recorder) setFail(v bool) {
	r.mu.Lock()
	r.fail = v
	r.mu.Unlock()
}

// promptStore is an in-memory PromptStore.
type promptStore struct {
	mu sync.Mutex
	m  map[string]model.ActivityStatus
}

func newPromptStore() *promptStore { return &promptStore{m: map[string]model.ActivityStatus{}} }

func (s *promptStore) DeletePromptsBefore(context.Context, time.Time) (int64, error) { return 0, nil }

func (s *promptStore) PromptStatus(_ context.Context, id string) (model.ActivityStatus, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[id]
	return st, ok, nil
}

func (s *promptStore) SetPromptStatus(_ context.Context, id string, status model.ActivityStatus) error {
	if msg := model.CheckActivityStatus(status); msg != "" {
		return errors.New(msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = status
	return nil
}

func (s *promptStore) get(id string) model.ActivityStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

// startWatcher runs a watcher until the test ends; the returned func stops it
// early and waits for Run to return.
func startWatcher(t *testing.T, cfg Config) (stop func()) {
	t.Helper()
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 20 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 80 * time.Millisecond
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// As on the writer: Run polls, Record makes the polls log.
	ctx, cancel := context.WithCancel(context.Background())
	done, recorded := make(chan error, 1), make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	go func() { recorded <- w.Record(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-recorded; err != nil {
				t.Errorf("Record returned %v", err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
				checkStopped(t)
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitPolls waits until the fake answered n more /queue requests.
func waitPolls(t *testing.T, f *fakeComfy, n int) {
	t.Helper()
	from := f.hits()
	waitFor(t, strconv.Itoa(n)+" polls", func() bool { return f.hits() >= from+n })
}

// checkStopped fails when Run returned before all its goroutines and
// connections ended.
func checkStopped(t *testing.T) {
	t.Helper()
	var stacks string
	for i := range 50 {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		// The watcher's own goroutines are gone at once; closed connections
		// take a moment to unwind.
		if strings.Contains(stacks, "comfyui.(*Watcher)") && i >= 2 {
			break
		}
		if !strings.Contains(stacks, "comfyui.(*Watcher)") && !strings.Contains(stacks, "net/http.(*persistConn)") {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("Run returned but left goroutines behind:\n%s", stacks)
}

// checkNoLeaks fails when a goroutine of the watcher or its connections
// outlives Run. Registered first, it runs after the watcher and fake stopped.
func checkNoLeaks(t *testing.T) {
	t.Cleanup(func() {
		var stacks string
		for range 200 {
			buf := make([]byte, 1<<20)
			stacks = string(buf[:runtime.Stack(buf, true)])
			if !strings.Contains(stacks, "comfyui.(*Watcher)") &&
				!strings.Contains(stacks, "websocket.(*Conn)") &&
				!strings.Contains(stacks, "net/http.(*persistConn)") {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("goroutines left after Run returned:\n%s", stacks)
	})
}

func details(t *testing.T, a model.Activity) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.Details, &m); err != nil {
		t.Fatalf("details of %q: %v", a.Title, err)
	}
	return m
}
