//go:build !linux

package system

import "errors"

// The dashboard runs on Linux pods; elsewhere the volume is not measured.
func statfs(string) (fsStat, error) {
	return fsStat{}, errors.New("volume figures are only read on Linux")
}

func statfsFree(dir string) (uint64, error) {
	_, err := statfs(dir)
	return 0, err
}
