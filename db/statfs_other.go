//go:build !linux

package db

import "errors"

// fsMagic is only known on Linux; elsewhere the journal is chosen by trying.
func fsMagic(string) (int64, error) {
	return 0, errors.New("filesystem types are only detected on Linux")
}
