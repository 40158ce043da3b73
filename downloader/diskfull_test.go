package downloader

import (
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"dashboard/model"
)

// A full volume, or a used-up quota, reads as such; other disk trouble is a
// disk error.
func TestDiskErrorVolumeFull(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code model.Code
		msg  string
	}{
		{&fs.PathError{Op: "write", Path: "x.part", Err: syscall.ENOSPC}, model.CodeDiskSpace, "write loras/x.part: the volume is full"},
		{fmt.Errorf("sync: %w", syscall.EDQUOT), model.CodeDiskSpace, "write loras/x.part: the volume is full (its quota is used up)"},
		{&fs.PathError{Op: "write", Path: "x.part", Err: syscall.EIO}, model.CodeDisk, "write loras/x.part: input/output error"},
	} {
		e := diskError("write loras/x.part", tc.err)
		if e.err.Code != tc.code || e.err.Message != tc.msg {
			t.Errorf("diskError(%v) = %s %q, want %s %q", tc.err, e.err.Code, e.err.Message, tc.code, tc.msg)
		}
	}
}
