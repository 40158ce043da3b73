//go:build unix

package downloader

import (
	"fmt"
	"io/fs"
	"syscall"
)

// freeSpace is the space an unprivileged writer may still use in dir.
func freeSpace(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// allocatedBytes is the disk space a file takes (a sparse file takes less
// than its size, a preallocated one all of it).
func allocatedBytes(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}
