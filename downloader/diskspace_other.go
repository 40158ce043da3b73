//go:build !unix

package downloader

import (
	"errors"
	"io/fs"
)

// freeSpace is unknown off Unix; downloads then go ahead unchecked.
func freeSpace(string) (uint64, error) {
	return 0, errors.New("free space is not measured on this system")
}

// allocatedBytes is the file's size where the space it takes is not known.
func allocatedBytes(fi fs.FileInfo) int64 { return fi.Size() }
