//go:build unix

package lease

import (
	"os"
	"syscall"
)

// flock takes an exclusive flock on f without waiting. The kernel drops it
// when the process dies, however it dies.
func flock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
