package system_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"dashboard/model"
	"dashboard/realtime"
	"dashboard/system"
)

// countingPublisher counts the system frames the monitor measured and
// published, whether or not anyone received them.
type countingPublisher struct {
	hub *realtime.Hub
	n   atomic.Int64
}

func (p *countingPublisher) Publish(typ string, data any) {
	if typ == model.FrameSystem {
		p.n.Add(1)
	}
	p.hub.Publish(typ, data)
}

// The "system" frame starts with the first client and stops with the last:
// with nobody connected, nothing is measured at all.
func TestFramesOnlyWhileWatched(t *testing.T) {
	const interval = 20 * time.Millisecond
	var mon *system.Monitor
	hub := realtime.New(realtime.Options{OnWatch: func(w bool) { mon.Watch(w) }})
	pub := &countingPublisher{hub: hub}
	ws := t.TempDir()
	mon = system.New(system.Config{
		Workspace: ws, ModelsDir: filepath.Join(ws, "models"), Publisher: pub, Interval: interval,
		ComfyUI: func() system.ComfyUI {
			return system.ComfyUI{Watching: true, Reachable: true, QueueRunning: 1, QueuePending: 3}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})

	up := fastws.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		_ = hub.Serve(conn, r.RemoteAddr, func() (any, error) { return map[string]any{}, nil })
	}))
	t.Cleanup(func() { hub.Close(context.Background()); srv.Close() })
	url := "ws" + strings.TrimPrefix(srv.URL, "http")

	time.Sleep(15 * interval)
	if n := pub.n.Load(); n != 0 {
		t.Fatalf("%d frames measured before anyone connected", n)
	}

	// The first client gets a frame at once, then one every interval.
	a := dial(t, url)
	if f := readFrame(t, a); f.Type != "snapshot" {
		t.Fatalf("first frame %q", f.Type)
	}
	var s system.System
	for i := range 3 {
		f := readFrame(t, a)
		if f.Type != model.FrameSystem {
			t.Fatalf("frame %d is %q, want system", i, f.Type)
		}
		if err := json.Unmarshal(f.Data, &s); err != nil {
			t.Fatal(err)
		}
	}
	if s.Volume.Path != ws || s.ComfyUI.QueuePending != 3 || s.GPUs == nil || s.MeasuredAt.IsZero() {
		t.Fatalf("system frame = %+v", s)
	}

	// A second client changes nothing; the frames stop when both have left.
	b := dial(t, url)
	readFrame(t, b)
	a.Close()
	readFrame(t, b) // still coming
	b.Close()
	deadline := time.Now().Add(10 * time.Second)
	for hub.Clients() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("clients never left")
		}
		time.Sleep(time.Millisecond)
	}
	stopped := pub.n.Load()
	time.Sleep(15 * interval)
	if n := pub.n.Load(); n > stopped+1 { // one may have been under way
		t.Fatalf("%d frames measured after the last client left", n-stopped)
	}

	// And they start again with the next client.
	c := dial(t, url)
	readFrame(t, c)
	if f := readFrame(t, c); f.Type != model.FrameSystem {
		t.Fatalf("frame %q after a new client, want system", f.Type)
	}
}

type frame struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func dial(t *testing.T, url string) *fastws.Conn {
	t.Helper()
	conn, resp, err := (&fastws.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { conn.Close() })
	return conn
}

func readFrame(t *testing.T, conn *fastws.Conn) frame {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, p, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	var f frame
	if err := json.Unmarshal(p, &f); err != nil {
		t.Fatalf("decode %q: %v", p, err)
	}
	return f
}

// The first walk's counts go out as soon as it ends, not a tick later.
func TestCountsSentWhenWalked(t *testing.T) {
	var mon *system.Monitor
	hub := realtime.New(realtime.Options{OnWatch: func(w bool) { mon.Watch(w) }})
	ws := t.TempDir()
	models := filepath.Join(ws, "models")
	if err := os.MkdirAll(filepath.Join(models, "loras"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(models, "loras", "a.safetensors"), make([]byte, 321), 0o644); err != nil {
		t.Fatal(err)
	}
	mon = system.New(system.Config{Workspace: ws, ModelsDir: models, Publisher: hub, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mon.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	up := fastws.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if conn, err := up.Upgrade(w, r, nil); err == nil {
			_ = hub.Serve(conn, r.RemoteAddr, func() (any, error) { return nil, nil })
		}
	}))
	t.Cleanup(func() { hub.Close(context.Background()); srv.Close() })

	c := dial(t, "ws"+strings.TrimPrefix(srv.URL, "http"))
	readFrame(t, c) // the snapshot
	for {
		f := readFrame(t, c) // within the read deadline, an hour before the next tick
		var s system.System
		if err := json.Unmarshal(f.Data, &s); err != nil {
			t.Fatal(err)
		}
		if s.Models.CountedAt != nil {
			if s.Models.Bytes != 321 {
				t.Fatalf("models = %+v", s.Models)
			}
			return
		}
	}
}
