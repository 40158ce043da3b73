package model

import "fmt"

// ModeName says whether this dashboard writes to the workspace volume.
type ModeName string

// The two modes: one dashboard per volume writes, the others only read.
const (
	ModeWriter   ModeName = "writer"
	ModeReadOnly ModeName = "read_only"
)

// Mode is the data of the "mode" frame, the snapshot's "mode" and the mode
// half of GET /api/health.
type Mode struct {
	Mode ModeName `json:"mode"`
	// Node is this dashboard's node name.
	Node string `json:"node"`
	// Writer is the node whose dashboard writes to the volume, nil when not
	// known (a lease that cannot be read).
	Writer *string `json:"writer"`
}

// WriterNode is the writer's name, "" when not known.
func (m Mode) WriterNode() string {
	if m.Writer == nil {
		return ""
	}
	return *m.Writer
}

// ReadOnlyError is the answer to a change asked of a read-only dashboard:
// it names the dashboard that can make it.
func ReadOnlyError(writer string) *Error {
	if writer == "" {
		return Errorf(CodeReadOnly, "This dashboard is read-only: another dashboard manages this volume. Make the change there, or stop that dashboard and this one takes over within a minute.")
	}
	return Errorf(CodeReadOnly, "This dashboard is read-only: the dashboard on %s manages this volume. Make the change there, or stop that dashboard and this one takes over within a minute.", writer)
}

// DBState is the "db" field of GET /api/health.
type DBState string

// What GET /api/health says about the database.
const (
	DBOK       DBState = "ok"
	DBDiskFull DBState = "disk_full" // a write failed for want of space; clears when one succeeds
	DBError    DBState = "error"     // unreachable, or deleted or replaced under the dashboard
)

// DiskFullError is the answer to a write the disk or quota refused.
func DiskFullError(path string, cause error) *Error {
	return &Error{
		Code:    CodeDiskFull,
		Message: fmt.Sprintf("The disk holding %s is full (or its quota is used up), so nothing was saved. Free some space on the volume (remove models you do not need, say) and try again.", path),
		Err:     cause,
	}
}
