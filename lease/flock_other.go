//go:build !unix

package lease

import (
	"errors"
	"os"
)

// flock is not available: a restarted dashboard then waits out the
// staleness window like any other.
func flock(*os.File) error { return errors.New("flock is not supported here") }
