//go:build !unix

package downloader

import (
	"io/fs"
	"os"
)

// lockFile does nothing where flock is not available.
func lockFile(*os.File) error { return nil }

func allocatedBytes(fi fs.FileInfo) int64 { return fi.Size() }
