//go:build !unix

package realtime_test

import (
	"testing"
	"time"
)

// raiseFileLimit does nothing where there is no RLIMIT_NOFILE.
func raiseFileLimit(testing.TB, uint64) {}

// cpuTime is not measured where there is no getrusage.
func cpuTime() time.Duration { return 0 }
