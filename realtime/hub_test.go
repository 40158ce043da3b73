package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	fastws "github.com/fasthttp/websocket"

	"dashboard/realtime"
)

type seqEvent struct {
	Seq int `json:"seq"`
}

func decodeSeq(t *testing.T, f frame) int {
	t.Helper()
	var e seqEvent
	if err := json.Unmarshal(f.Data, &e); err != nil {
		t.Fatalf("decode event data %s: %v", f.Data, err)
	}
	return e.Seq
}

func TestSnapshotFirstThenEventsInOrder(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start func(testing.TB, *realtime.Hub, func() (any, error)) *server
	}{
		{"net/http", startHTTP},
		{"fiber", startFiber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hub := realtime.New(realtime.Options{Logger: quietLogger()})
			srv := tc.start(t, hub, snapshotOf(map[string]any{"downloads": []string{"a"}}))
			conn := dial(t, srv.url)

			first := readFrame(t, conn)
			if first.Type != "snapshot" || string(first.Data) != `{"downloads":["a"]}` {
				t.Fatalf("first frame = %s %s, want the snapshot", first.Type, first.Data)
			}

			const n = 100
			for i := 1; i <= n; i++ {
				hub.Publish("download", seqEvent{Seq: i})
			}
			for i := 1; i <= n; i++ {
				f := readFrame(t, conn)
				if f.Type != "download" {
					t.Fatalf("frame %d type = %q, want download", i, f.Type)
				}
				if got := decodeSeq(t, f); got != i {
					t.Fatalf("frame %d has seq %d: events out of order or lost", i, got)
				}
			}

			// The client leaving ends Serve without an error.
			_ = conn.WriteControl(fastws.CloseMessage, fastws.FormatCloseMessage(fastws.CloseNormalClosure, ""), time.Now().Add(guard))
			if err := waitServed(t, srv); err != nil {
				t.Fatalf("Serve after the client left = %v, want nil", err)
			}
			waitFor(t, "the client to be unregistered", func() bool { return hub.Clients() == 0 })
		})
	}
}

func TestPublishMarshalsTypeAndData(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	srv := startHTTP(t, hub, snapshotOf(nil))
	conn := dial(t, srv.url)
	if f := readFrame(t, conn); f.Type != "snapshot" || string(f.Data) != "null" {
		t.Fatalf("snapshot = %s %s, want snapshot null", f.Type, f.Data)
	}

	hub.Publish("bad", make(chan int)) // cannot be marshalled: logged, not sent
	hub.Publish("activity_cleared", map[string]int{"deleted": 3})

	_ = conn.SetReadDeadline(time.Now().Add(guard))
	_, p, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if want := `{"type":"activity_cleared","data":{"deleted":3}}`; string(p) != want {
		t.Fatalf("frame = %s, want %s", p, want)
	}
}

func TestEventDuringSlowSnapshotIsDeliveredAfterIt(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := startHTTP(t, hub, func() (any, error) {
		close(entered)
		<-release
		return map[string]int{"state": 1}, nil
	})
	conn := dial(t, srv.url)

	select {
	case <-entered:
	case <-time.After(guard):
		t.Fatal("snapshot was not called")
	}
	// The client is registered before snapshot runs, so this event is held for it.
	if got := hub.Clients(); got != 1 {
		t.Fatalf("Clients() during snapshot = %d, want 1", got)
	}
	hub.Publish("activity", seqEvent{Seq: 1})
	hub.Publish("activity", seqEvent{Seq: 2})
	close(release)

	if f := readFrame(t, conn); f.Type != "snapshot" || string(f.Data) != `{"state":1}` {
		t.Fatalf("first frame = %s %s, want the snapshot", f.Type, f.Data)
	}
	for want := 1; want <= 2; want++ {
		f := readFrame(t, conn)
		if f.Type != "activity" || decodeSeq(t, f) != want {
			t.Fatalf("frame after snapshot = %s %s, want activity seq %d", f.Type, f.Data, want)
		}
	}
	hub.Publish("activity", seqEvent{Seq: 3})
	if f := readFrame(t, conn); decodeSeq(t, f) != 3 {
		t.Fatalf("live event after held ones = %s, want seq 3", f.Data)
	}
}

func TestSnapshotErrorClosesWith1011(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	boom := errors.New("database is locked")
	srv := startHTTP(t, hub, func() (any, error) { return nil, boom })
	conn := dial(t, srv.url)

	wantClose(t, readUntilClose(conn), 1011, "")
	if err := waitServed(t, srv); !errors.Is(err, boom) {
		t.Fatalf("Serve = %v, want an error wrapping %v", err, boom)
	}
	if got := hub.Clients(); got != 0 {
		t.Fatalf("Clients() = %d after a failed snapshot, want 0", got)
	}
}

func TestSlowClientIsDroppedWithoutBlockingPublish(t *testing.T) {
	logs := &logBuffer{}
	hub := realtime.New(realtime.Options{
		Logger:     slogTo(logs),
		SendBuffer: 64,
		WriteWait:  3 * time.Second,
	})
	srv := startHTTP(t, hub, snapshotOf("s"))

	stuck := dial(t, srv.url) // never reads until it has been dropped
	good := dial(t, srv.url)
	if f := readFrame(t, good); f.Type != "snapshot" {
		t.Fatalf("first frame = %q, want snapshot", f.Type)
	}

	// The good client reads in its own goroutine and reports how far it got.
	// Publishing is paced by it (never more than 32 frames ahead, half its
	// buffer) so that only the stuck client can fall behind; Publish itself
	// never waits for anyone.
	const n = 600
	var received atomic.Int64
	readErr := make(chan error, 1)
	go func() {
		for i := 1; i <= n; i++ {
			// A deadline per frame, not for all 600: on a busy machine the
			// whole exchange can take longer than one guard.
			_ = good.SetReadDeadline(time.Now().Add(guard))
			_, p, err := good.ReadMessage()
			if err != nil {
				readErr <- err
				return
			}
			var f struct {
				Data seqEvent `json:"data"`
			}
			if err := json.Unmarshal(p, &f); err != nil || f.Data.Seq != i {
				readErr <- errors.New("good client got seq " + string(p[:min(len(p), 40)]) + ", out of order")
				return
			}
			received.Store(int64(i))
		}
		readErr <- nil
	}()

	// 32 KiB events: 600 of them (19 MiB) are far more than the stuck client's
	// socket buffers and send buffer can hold.
	pad := strings.Repeat("x", 32<<10)
	var slowest time.Duration
	for i := 1; i <= n; i++ {
		waitFor(t, "the good client to keep up", func() bool { return int64(i)-received.Load() <= 32 })
		began := time.Now()
		hub.Publish("download", struct {
			Seq int    `json:"seq"`
			Pad string `json:"pad"`
		}{i, pad})
		slowest = max(slowest, time.Since(began))
	}
	// A Publish that waited on the stuck client would take its write
	// deadline (3 s); half of it leaves room for a busy machine.
	if slowest > 1500*time.Millisecond {
		t.Fatalf("a Publish took %v: it waited on a client", slowest)
	}
	if err := <-readErr; err != nil {
		t.Fatalf("good client: %v", err)
	}
	if received.Load() != n {
		t.Fatalf("good client received %d of %d events", received.Load(), n)
	}

	waitFor(t, "the stuck client to be dropped", func() bool { return hub.Clients() == 1 })
	if err := waitServed(t, srv); err != nil {
		t.Fatalf("Serve of the dropped client = %v, want nil", err)
	}
	if got := strings.Count(logs.String(), "dropped slow client"); got != 1 {
		t.Fatalf("logged %d slow-client drops, want 1:\n%s", got, logs)
	}
	// The stuck client's connection has been closed by the server: reading it to
	// the end finishes with an error instead of blocking.
	if err := readUntilClose(stuck); err == nil {
		t.Fatal("stuck client's connection still open")
	}
}

func TestPingsAndPongTimeout(t *testing.T) {
	hub := realtime.New(realtime.Options{
		Logger:       quietLogger(),
		PingInterval: 40 * time.Millisecond,
		PongWait:     200 * time.Millisecond,
	})
	srv := startHTTP(t, hub, snapshotOf("s"))

	// A live client: the library's default ping handler answers with a pong. It
	// counts pings and keeps reading for far longer than PongWait.
	alive := dial(t, srv.url)
	var pings atomic.Int64
	alive.SetPingHandler(func(data string) error {
		pings.Add(1)
		return alive.WriteControl(fastws.PongMessage, []byte(data), time.Now().Add(guard))
	})
	aliveErr := make(chan error, 1)
	go func() { aliveErr <- readUntilClose(alive) }()

	// A dead client: reads, but never answers pings.
	dead := dial(t, srv.url)
	var deadPings atomic.Int64
	dead.SetPingHandler(func(string) error {
		deadPings.Add(1)
		return nil
	})
	wantClose(t, readUntilClose(dead), 1008, "ping timeout")
	if deadPings.Load() == 0 {
		t.Fatal("dead client was dropped without being pinged")
	}
	if err := waitServed(t, srv); err != nil {
		t.Fatalf("Serve of the dead client = %v, want nil", err)
	}

	// Ten pings span twice PongWait: the answering client survived them.
	waitFor(t, "ten pings to the live client", func() bool { return pings.Load() >= 10 })
	if got := hub.Clients(); got != 1 {
		t.Fatalf("Clients() = %d, want the live client only", got)
	}
	hub.Close(context.Background())
	wantClose(t, <-aliveErr, 1001, "server shutting down")
}

func TestOversizeFrameDropsClient(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger(), ReadLimit: 64})
	srv := startHTTP(t, hub, snapshotOf("s"))
	conn := dial(t, srv.url)
	readFrame(t, conn)

	// Small frames are read and ignored.
	if err := conn.WriteMessage(fastws.TextMessage, []byte(`{"hello":1}`)); err != nil {
		t.Fatalf("write small frame: %v", err)
	}
	hub.Publish("settings", seqEvent{Seq: 1})
	if f := readFrame(t, conn); f.Type != "settings" {
		t.Fatalf("frame after a small client frame = %q, want settings", f.Type)
	}

	if err := conn.WriteMessage(fastws.TextMessage, []byte(strings.Repeat("y", 1024))); err != nil {
		t.Fatalf("write big frame: %v", err)
	}
	wantClose(t, readUntilClose(conn), fastws.CloseMessageTooBig, "")
	if err := waitServed(t, srv); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	waitFor(t, "the client to be unregistered", func() bool { return hub.Clients() == 0 })
}

func TestCloseSends1001AndLeavesNoGoroutines(t *testing.T) {
	for _, name := range []string{"net/http", "fiber"} {
		t.Run(name, func(t *testing.T) {
			before := len(goroutines())
			// A sub-test of its own so that its cleanups (server shutdown, client
			// closes) have run before goroutines are counted.
			t.Run("clients", func(t *testing.T) {
				hub := realtime.New(realtime.Options{Logger: quietLogger(), PingInterval: 20 * time.Millisecond})
				var srv *server
				if name == "fiber" {
					srv = startFiber(t, hub, snapshotOf("s"))
				} else {
					srv = startHTTP(t, hub, snapshotOf("s"))
				}
				const n = 5
				errs := make(chan error, n)
				for range n {
					conn := dial(t, srv.url)
					readFrame(t, conn)
					go func() { errs <- readUntilClose(conn) }()
				}
				if got := hub.Clients(); got != n {
					t.Fatalf("Clients() = %d, want %d", got, n)
				}

				hub.Close(context.Background()) // returns only once every Serve has returned
				for range n {
					if err := waitServed(t, srv); err != nil {
						t.Fatalf("Serve = %v, want nil", err)
					}
				}
				for range n {
					wantClose(t, <-errs, 1001, "server shutting down")
				}
				if got := hub.Clients(); got != 0 {
					t.Fatalf("Clients() after Close = %d, want 0", got)
				}
				hub.Publish("download", seqEvent{Seq: 1}) // no one to send to; must not panic
				hub.Close(context.Background())           // idempotent
			})
			checkNoGoroutineLeak(t, before)
		})
	}
}

func TestCloseDoesNotWaitForSilentClients(t *testing.T) {
	// These clients never read again after their snapshot, so they never answer
	// the close frame: Close must not depend on them to end their Serve.
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	srv := startFiber(t, hub, snapshotOf("s"))
	for range 3 {
		readFrame(t, dial(t, srv.url))
	}
	closed := make(chan struct{})
	go func() {
		hub.Close(context.Background())
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(guard):
		t.Fatal("Close waited for clients that do not answer")
	}
	for range 3 {
		if err := waitServed(t, srv); err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	}
}

func TestServeAfterCloseReturnsAtOnce(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	srv := startFiber(t, hub, func() (any, error) {
		t.Error("snapshot called after Close")
		return nil, nil
	})
	hub.Close(context.Background())

	conn := dial(t, srv.url)
	wantClose(t, readUntilClose(conn), 1001, "server shutting down")
	if err := waitServed(t, srv); err != nil {
		t.Fatalf("Serve after Close = %v, want nil", err)
	}
	if got := hub.Clients(); got != 0 {
		t.Fatalf("Clients() = %d, want 0", got)
	}
}

func TestCloseWaitsForServe(t *testing.T) {
	// A snapshot that is still running holds Close back: when Close returns, no
	// Serve is left and the client has been told the server is shutting down.
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	entered := make(chan struct{})
	release := make(chan struct{})
	srv := startHTTP(t, hub, func() (any, error) {
		close(entered)
		<-release
		return "late", nil
	})
	conn := dial(t, srv.url)
	<-entered

	var closed atomic.Bool
	var wg sync.WaitGroup
	wg.Go(func() {
		hub.Close(context.Background())
		closed.Store(true)
	})
	// Close cannot finish while snapshot runs; give it a moment to try.
	time.Sleep(50 * time.Millisecond)
	if closed.Load() {
		t.Fatal("Close returned while Serve was still running")
	}
	close(release)
	wg.Wait()
	if err := waitServed(t, srv); err != nil {
		t.Fatalf("Serve = %v, want nil", err)
	}
	wantClose(t, readUntilClose(conn), 1001, "server shutting down")
}

func TestClientsCounts(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	if got := hub.Clients(); got != 0 {
		t.Fatalf("Clients() of a new hub = %d, want 0", got)
	}
	srv := startFiber(t, hub, snapshotOf("s"))
	var conns []*fastws.Conn
	for i := 1; i <= 3; i++ {
		c := dial(t, srv.url)
		readFrame(t, c) // registered before its snapshot was taken
		if got := hub.Clients(); got != i {
			t.Fatalf("Clients() = %d after %d connected, want %d", got, i, i)
		}
		conns = append(conns, c)
	}
	_ = conns[0].Close() // abrupt: no close frame
	waitFor(t, "two clients", func() bool { return hub.Clients() == 2 })
	_ = conns[1].WriteControl(fastws.CloseMessage, fastws.FormatCloseMessage(fastws.CloseGoingAway, ""), time.Now().Add(guard))
	waitFor(t, "one client", func() bool { return hub.Clients() == 1 })
}

// The owner hears when the first client arrives and when the last one leaves,
// however it leaves (closing, dropped as too slow), and nothing in between.
func TestOnWatchFirstAndLastClient(t *testing.T) {
	var mu sync.Mutex
	var calls []bool
	got := func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return append([]bool(nil), calls...)
	}
	hub := realtime.New(realtime.Options{Logger: quietLogger(), SendBuffer: 1, OnWatch: func(w bool) {
		mu.Lock()
		calls = append(calls, w)
		mu.Unlock()
	}})
	srv := startFiber(t, hub, snapshotOf("s"))
	if c := got(); len(c) != 0 {
		t.Fatalf("OnWatch called before any client: %v", c)
	}

	a := dial(t, srv.url)
	readFrame(t, a)
	if c := got(); len(c) != 1 || !c[0] {
		t.Fatalf("after the first client: %v, want [true]", c)
	}
	b := dial(t, srv.url)
	readFrame(t, b)
	_ = a.Close()
	waitFor(t, "one client", func() bool { return hub.Clients() == 1 })
	if c := got(); len(c) != 1 {
		t.Fatalf("a second client came and the first went: %v, want still [true]", c)
	}
	_ = b.Close()
	waitFor(t, "the last client gone", func() bool { return len(got()) == 2 })
	if c := got(); c[1] {
		t.Fatalf("after the last client left: %v, want [true false]", c)
	}

	// A client the hub drops as too slow (it never reads) is a leaving client too.
	slow := dial(t, srv.url)
	waitFor(t, "the slow client registered", func() bool { return len(got()) == 3 })
	for i := range 1000 {
		hub.Publish("download", seqEvent{Seq: i})
		if hub.Clients() == 0 {
			break
		}
	}
	waitFor(t, "the slow client dropped", func() bool { return len(got()) == 4 })
	if c := got(); !c[2] || c[3] {
		t.Fatalf("a dropped last client: %v, want [true false true false]", c)
	}
	_ = slow.Close()
}
