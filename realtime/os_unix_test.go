//go:build unix

package realtime_test

import (
	"syscall"
	"testing"
	"time"
)

// raiseFileLimit lifts the soft open-files limit to want (capped by the hard
// limit): every loopback WebSocket costs the process one descriptor per end.
func raiseFileLimit(t testing.TB, want uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("get open-files limit: %v", err)
	}
	if lim.Cur >= want {
		return
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("raise open-files limit to %d: %v", lim.Cur, err)
	}
	if lim.Cur < want {
		t.Logf("open-files limit is %d (hard limit), wanted %d", lim.Cur, want)
	}
}

// cpuTime is the user plus system CPU time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
