package server

import (
	"fmt"
	"testing"
	"time"
)

// A spray of addresses, each guessing once, must not grow the table of
// failed attempts without bound (each login would then look through it),
// and must not make the guesser who keeps at it from one address escape.
func TestLockoutTableIsBounded(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := newLockout(func() time.Time { return now })
	for i := range 3 * maxTracked {
		l.fail(fmt.Sprintf("198.18.%d.%d", i/256, i%256))
		if i%4 == 0 {
			l.fail("203.0.113.9") // the persistent guesser stays among the newest
		}
	}
	if n := l.tracked(); n > maxTracked {
		t.Fatalf("the table holds %d clients, more than %d", n, maxTracked)
	}
	if locked, _ := l.locked("203.0.113.9"); !locked {
		t.Fatal("the client that kept guessing was evicted, not the oldest")
	}
	if locked, _ := l.locked("198.18.0.1"); locked {
		t.Fatal("a client with one wrong guess is locked out")
	}
}
