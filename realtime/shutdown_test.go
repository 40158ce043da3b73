package realtime_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"dashboard/realtime"
)

// A client that never reads while the server publishes a lot leaves its
// writer blocked in a write until the write deadline. Closing the hub must
// not wait for that: at its own deadline it drops such clients.
func TestCloseDropsStuckClientsAtItsDeadline(t *testing.T) {
	// A write deadline far past any shutdown budget.
	hub := realtime.New(realtime.Options{Logger: quietLogger(), WriteWait: time.Minute})
	srv := startFiber(t, hub, snapshotOf("s"))
	stuck := dial(t, srv.url) // never reads
	_ = stuck
	healthy := dial(t, srv.url)
	readFrame(t, healthy)
	healthyDone := make(chan error, 1)
	go func() { healthyDone <- readUntilClose(healthy) }()

	big := strings.Repeat("x", 1<<20)
	for range 64 { // 64 MiB, queued (the send buffer holds 256 frames): far more than the socket buffers hold
		hub.Publish("download", big)
	}
	time.Sleep(100 * time.Millisecond) // let the writer fill the buffers

	closed := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		closeHub(hub, 300*time.Millisecond)
		closed <- time.Since(start)
	}()
	select {
	case took := <-closed:
		t.Logf("Close took %v", took)
	case <-time.After(guard):
		t.Fatal("Close waited for a client stuck in a write")
	}
	for range 2 {
		waitServed(t, srv)
	}
	<-healthyDone
	if n := hub.Clients(); n != 0 {
		t.Fatalf("%d clients left", n)
	}
}

func closeHub(h *realtime.Hub, within time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	h.Close(ctx)
}
