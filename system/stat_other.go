//go:build !linux

package system

import (
	"io/fs"
	"os"
)

func fileSize(_ *os.File, e fs.DirEntry) (int64, bool) {
	info, err := e.Info()
	if err != nil {
		return 0, false
	}
	return info.Size(), true
}
