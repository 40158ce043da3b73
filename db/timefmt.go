package db

import (
	"fmt"
	"time"
)

// timeLayout is how every timestamp is stored: fixed-width UTC with
// milliseconds, so comparing the text compares the times (retention deletes
// with created_at < cutoff and can use the index).
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string {
	return t.UTC().Format(timeLayout)
}

// parseTime reads a stored timestamp. Besides our layout it accepts RFC 3339
// and SQLite's CURRENT_TIMESTAMP form, which rows written by other tools (or
// the column defaults) carry.
func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{timeLayout, time.RFC3339Nano, time.DateTime} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unrecognised timestamp %q", s)
}

// dbTime scans a timestamp column. The driver hands TIMESTAMP columns over
// either as text or, when the text looks like RFC 3339, as a time.Time.
type dbTime struct {
	Time  time.Time
	Valid bool // false for NULL
}

func (d *dbTime) Scan(src any) error {
	var err error
	switch v := src.(type) {
	case nil:
		*d = dbTime{}
		return nil
	case time.Time:
		d.Time = v.UTC()
	case string:
		d.Time, err = parseTime(v)
	case []byte:
		d.Time, err = parseTime(string(v))
	default:
		err = fmt.Errorf("unexpected timestamp type %T", src)
	}
	d.Valid = err == nil
	return err
}
