package db

import (
	"testing"
	"time"
)

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05.000Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999999999, time.UTC), "2026-01-02T03:04:05.999Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 7000000, time.FixedZone("X", -5*3600)), "2026-01-02T08:04:05.007Z"},
	} {
		if got := formatTime(tc.in); got != tc.want {
			t.Errorf("formatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Fixed width makes text order time order, which the retention query relies on.
	a := formatTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	b := formatTime(time.Date(2026, 1, 2, 3, 4, 5, 10000000, time.UTC))
	c := formatTime(time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	if !(a < b && b < c) || len(a) != len(b) {
		t.Errorf("not ordered: %s %s %s", a, b, c)
	}
}

func TestDBTimeScan(t *testing.T) {
	want := time.Date(2026, 2, 20, 9, 8, 7, 0, time.UTC)
	for _, src := range []any{
		"2026-02-20T09:08:07.000Z",
		[]byte("2026-02-20T09:08:07.000Z"),
		"2026-02-20 09:08:07", // CURRENT_TIMESTAMP
		"2026-02-20T10:08:07+01:00",
		want.In(time.FixedZone("X", 3600)),
	} {
		var d dbTime
		if err := d.Scan(src); err != nil || !d.Valid || !d.Time.Equal(want) || d.Time.Location() != time.UTC {
			t.Errorf("Scan(%v) = %+v, %v", src, d, err)
		}
	}
	var d dbTime
	if err := d.Scan(nil); err != nil || d.Valid {
		t.Errorf("Scan(nil) = %+v, %v", d, err)
	}
	if err := d.Scan("yesterday"); err == nil {
		t.Error("Scan(yesterday) succeeded")
	}
	if err := d.Scan(int64(5)); err == nil {
		t.Error("Scan(int64) succeeded")
	}
}
