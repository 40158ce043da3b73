package downloader

import (
	"os"
	"syscall"
)

// allocate reserves the disk blocks of a size-byte file and extends it to
// that size; the filesystem may not support it (EOPNOTSUPP). A variable so
// tests can stand in for such a filesystem.
var allocate = fallocate

func fallocate(f *os.File, size int64) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var aerr error
	if err := rc.Control(func(fd uintptr) {
		for {
			aerr = syscall.Fallocate(int(fd), 0, 0, size)
			if aerr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return aerr
}
