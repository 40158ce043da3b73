//go:build !linux

package downloader

import (
	"errors"
	"os"
)

// allocate is not available here: the caller makes a sparse file instead.
var allocate = func(*os.File, int64) error { return errors.ErrUnsupported }
