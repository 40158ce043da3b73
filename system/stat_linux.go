package system

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// fileSize asks the size of e relative to its open directory (fstatat), so
// the filesystem does not resolve the whole path again for every file.
func fileSize(dir *os.File, e fs.DirEntry) (int64, bool) {
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), e.Name(), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, false
	}
	return st.Size, true
}
