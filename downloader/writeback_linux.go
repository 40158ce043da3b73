//go:build linux && !arm

package downloader

import (
	"os"
	"syscall"
)

const syncFileRangeWrite = 0x2 // SYNC_FILE_RANGE_WRITE: start writeback, do not wait

// writeback asks the kernel to start writing a file's new pages to disk as
// they arrive, so the fsync before the rename has little left to do (it
// was a fifth of the time of a loopback download of 1 GiB) and a multi-GB
// download does not pile up gigabytes of dirty pages. The requests run on
// their own goroutine because sync_file_range blocks while the disk's queue
// is full, and the transfer must not wait for that.
type writeback struct {
	written int64 // end of the data written so far
	asked   int64 // end of the data last handed over
	reqs    chan int64
	done    chan struct{}
}

func newWriteback(f *os.File, off int64) *writeback {
	w := &writeback{written: off, asked: off}
	rc, err := f.SyscallConn()
	if err != nil {
		return w
	}
	fd, ok := 0, false
	if rc.Control(func(p uintptr) { fd, ok = int(p), true }) != nil || !ok {
		return w
	}
	w.reqs = make(chan int64, 1)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		from := off
		for to := range w.reqs {
			// Only a hint: where it fails (a filesystem without
			// support), fsync does all the work.
			if syscall.SyncFileRange(fd, from, to-from, syncFileRangeWrite) != nil {
				for range w.reqs {
				}
				return
			}
			from = to
		}
	}()
	return w
}

// wrote notes n more bytes written and, every writebackEvery bytes, hands
// them to the disk.
func (w *writeback) wrote(n int64) {
	w.written += n
	if w.reqs == nil || w.written-w.asked < writebackEvery {
		return
	}
	select {
	case <-w.reqs: // still pending: this larger request replaces it
	default:
	}
	w.reqs <- w.written
	w.asked = w.written
}

// close waits for the goroutine; the file must stay open until it returns.
func (w *writeback) close() {
	if w.reqs == nil {
		return
	}
	close(w.reqs)
	<-w.done
}
