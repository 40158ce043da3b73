package realtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"
	contribws "github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"dashboard/realtime"
)

// Both connection types the hub is served with in production and in tests must
// satisfy Conn.
var (
	_ realtime.Conn = (*fastws.Conn)(nil)
	_ realtime.Conn = (*contribws.Conn)(nil)
)

// guard bounds every wait in the tests so a bug shows up as a failure, not a hang.
// It is not a performance assertion.
const guard = 10 * time.Second

// frame is a decoded server frame.
type frame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// serveResult is what one Serve call returned.
type serveResult struct{ err error }

// server is a hub served on a real loopback listener.
type server struct {
	url    string
	hub    *realtime.Hub
	served chan serveResult // one value per finished Serve call
}

// snapshotOf returns a snapshot function that always returns v.
func snapshotOf(v any) func() (any, error) {
	return func() (any, error) { return v, nil }
}

// startHTTP serves hub at /ws through net/http and fasthttp/websocket's Upgrader.
// Cleanup closes the hub first, as the server does at shutdown.
func startHTTP(t testing.TB, hub *realtime.Hub, snapshot func() (any, error)) *server {
	t.Helper()
	s := &server{hub: hub, served: make(chan serveResult, 64)}
	up := fastws.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		s.served <- serveResult{hub.Serve(conn, r.RemoteAddr, snapshot)}
	})
	ts := httptest.NewServer(mux)
	s.url = "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	t.Cleanup(func() {
		hub.Close(context.Background())
		ts.Close()
	})
	return s
}

// startFiber serves hub at /ws exactly as production does: Fiber plus
// gofiber/contrib/websocket.
func startFiber(t testing.TB, hub *realtime.Hub, snapshot func() (any, error)) *server {
	t.Helper()
	s := &server{hub: hub, served: make(chan serveResult, 64)}
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/ws", contribws.New(func(c *contribws.Conn) {
		// ?from= stands in for the client's address in the limits test.
		err := hub.Serve(c, c.Query("from", "127.0.0.1"), snapshot)
		select {
		case s.served <- serveResult{err}:
		default: // the load test does not collect results
		}
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = app.Listener(ln)
	}()
	s.url = "ws://" + ln.Addr().String() + "/ws"
	t.Cleanup(func() {
		hub.Close(context.Background())
		if err := app.ShutdownWithTimeout(guard); err != nil {
			t.Errorf("fiber shutdown: %v", err)
		}
		<-done
	})
	return s
}

// dial connects a client and registers its closing.
func dial(t testing.TB, url string) *fastws.Conn {
	t.Helper()
	d := fastws.Dialer{HandshakeTimeout: guard}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	_ = resp.Body.Close()
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// readFrame reads one text frame and decodes it.
func readFrame(t *testing.T, conn *fastws.Conn) frame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(guard))
	typ, p, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	if typ != fastws.TextMessage {
		t.Fatalf("frame type = %d, want text", typ)
	}
	var f frame
	if err := json.Unmarshal(p, &f); err != nil {
		t.Fatalf("decode frame %q: %v", p, err)
	}
	return f
}

// readUntilClose reads and discards frames until the connection ends and returns
// the error that ended it.
func readUntilClose(conn *fastws.Conn) error {
	_ = conn.SetReadDeadline(time.Now().Add(guard))
	for {
		if _, _, err := conn.ReadMessage(); err != nil {
			return err
		}
	}
}

// wantClose checks that err is a close frame with code and, if non-empty, reason.
func wantClose(t *testing.T, err error, code int, reason string) {
	t.Helper()
	var ce *fastws.CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("connection ended with %v, want close code %d", err, code)
	}
	if ce.Code != code {
		t.Fatalf("close code = %d (%q), want %d", ce.Code, ce.Text, code)
	}
	if reason != "" && ce.Text != reason {
		t.Fatalf("close reason = %q, want %q", ce.Text, reason)
	}
}

// waitFor polls cond until it holds or the guard expires.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitServed waits for one Serve call to return and returns its error.
func waitServed(t *testing.T, s *server) error {
	t.Helper()
	select {
	case r := <-s.served:
		return r.err
	case <-time.After(guard):
		t.Fatal("Serve did not return")
		return nil
	}
}

// goroutines returns the stacks of all goroutines but fasthttp's own: its date
// ticker lives as long as the process, and a stopped server's worker-pool cleaner
// sleeps up to 10 s before it notices. Counting them would only make the leak
// check slow.
func goroutines() []string {
	libraryGoroutines := []string{
		"fasthttp.updateServerDate",
		"fasthttp.(*workerPool).Start",
	}
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, p := range libraryGoroutines {
			if strings.Contains(g, p) {
				continue next
			}
		}
		out = append(out, g)
	}
	return out
}

// checkNoGoroutineLeak waits for the number of goroutines to settle back to
// before (a len(goroutines()) taken earlier) and fails with their stacks if it
// does not. A real leak never settles; the loop only absorbs goroutines that are
// still on their way out.
func checkNoGoroutineLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		gs := goroutines()
		// The count, and no goroutine still in the hub's code: goroutines of
		// earlier tests ending meanwhile could hide a leak from the count.
		if len(gs) <= before && len(hubGoroutines(gs)) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left, want at most %d:\n%s", len(gs), before, strings.Join(gs, "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hubGoroutines picks the goroutines running the hub's code (not a test's).
func hubGoroutines(gs []string) []string {
	var out []string
	for _, g := range gs {
		if strings.Contains(g, "dashboard/realtime.(*") && !strings.Contains(g, "testing.tRunner") {
			out = append(out, g)
		}
	}
	return out
}

// logBuffer collects log output for assertions; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// slogTo logs text to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

// quietLogger drops log output; tests that check logs use logBuffer instead.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}
