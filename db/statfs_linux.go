package db

import "syscall"

// fsMagic is the statfs magic number of the filesystem holding dir.
func fsMagic(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	// Through uint32: f_type is signed and 32 bits wide on some
	// architectures, and every magic number fits in 32 bits.
	return int64(uint32(st.Type)), nil
}
