package system

import (
	"fmt"
	"syscall"
)

// statfs reads the filesystem dir is on. Used counts every block in use
// (root's reserve included); free is what an unprivileged writer may still
// use, so used + free can be less than the total.
func statfs(dir string) (fsStat, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fsStat{}, fmt.Errorf("statfs %s: %w", dir, err)
	}
	unit := st.Frsize
	if unit <= 0 {
		unit = st.Bsize
	}
	return fsStat{
		total: clampBytes(st.Blocks, unit),
		used:  clampBytes(st.Blocks-st.Bfree, unit),
		free:  clampBytes(st.Bavail, unit),
		magic: int64(st.Type),
	}, nil
}

// clampBytes multiplies blocks by the block size without overflowing int64
// (a cluster filesystem may report exabytes).
func clampBytes(blocks uint64, unit int64) int64 {
	if unit <= 0 {
		return 0
	}
	if blocks > uint64(1<<62)/uint64(unit) {
		return 1 << 62
	}
	return int64(blocks) * unit
}

// statfsFree is the space an unprivileged writer may still use in dir.
func statfsFree(dir string) (uint64, error) {
	st, err := statfs(dir)
	if err != nil {
		return 0, err
	}
	return uint64(st.free), nil
}
