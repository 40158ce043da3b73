package realtime_test

import (
	"errors"
	"testing"

	"dashboard/realtime"
)

// The hub holds at most MaxClients clients, and at most MaxClientsPerAddress
// from one address. The server asks Admit before the upgrade (and answers
// HTTP 503); a client let through anyway is closed with 1013.
func TestClientLimits(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger(), MaxClients: 3, MaxClientsPerAddress: 2})
	srv := startFiber(t, hub, snapshotOf("s"))
	from := func(addr string) string { return srv.url + "?from=" + addr }

	a1 := dial(t, from("a"))
	readFrame(t, a1)
	readFrame(t, dial(t, from("a")))
	var le *realtime.LimitError
	if err := hub.Admit("a"); !errors.As(err, &le) || !le.PerAddress || le.Limit != 2 {
		t.Fatalf("Admit of a third client from a = %v, want the per-address limit", err)
	}
	if err := hub.Admit("b"); err != nil {
		t.Fatalf("Admit from another address = %v", err)
	}
	wantClose(t, readUntilClose(dial(t, from("a"))), 1013, "too many connections")
	if err := waitServed(t, srv); !errors.As(err, &le) {
		t.Fatalf("Serve of a refused client = %v, want a LimitError", err)
	}

	readFrame(t, dial(t, from("b")))
	if err := hub.Admit("c"); !errors.As(err, &le) || le.PerAddress || le.Limit != 3 {
		t.Fatalf("Admit of a fourth client = %v, want the total limit", err)
	}
	wantClose(t, readUntilClose(dial(t, from("c"))), 1013, "too many connections")
	waitServed(t, srv)
	if n := hub.Clients(); n != 3 {
		t.Fatalf("%d clients, want 3", n)
	}

	// A client that leaves frees its place.
	_ = a1.Close()
	waitServed(t, srv)
	if err := hub.Admit("a"); err != nil {
		t.Fatalf("Admit after a client left = %v", err)
	}
	readFrame(t, dial(t, from("a")))
}

// The defaults leave room for the 1,000-client load test, all from one
// address.
func TestDefaultLimitsHoldTheLoadTest(t *testing.T) {
	hub := realtime.New(realtime.Options{Logger: quietLogger()})
	if max, perAddr := hub.Limits(); max < 2000 || perAddr < 1000 {
		t.Fatalf("limits %d total, %d per address", max, perAddr)
	}
}
