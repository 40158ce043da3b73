package model

import (
	"strings"
	"testing"
)

func TestActivityCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    Activity
		want string // "" or a part of the reason
	}{
		{"good", Activity{Type: ActivityDownload, Status: ActivityCompleted, Title: "x"}, ""},
		{"every type", Activity{Type: ActivityError, Status: ActivityStarted, Title: "x"}, ""},
		{"bad type", Activity{Type: "upload", Status: ActivityFailed, Title: "x"}, `type must be one of download, generation, error (got "upload")`},
		{"bad status", Activity{Type: ActivityError, Status: "done", Title: "x"}, `status must be one of started, completed, failed (got "done")`},
		{"no title", Activity{Type: ActivityError, Status: ActivityFailed}, "title is required"},
		{"long title", Activity{Type: ActivityError, Status: ActivityFailed, Title: strings.Repeat("t", MaxActivityTitle+1)}, "limited to 500 bytes"},
		{"long subtitle", Activity{Type: ActivityError, Status: ActivityFailed, Title: "x", Subtitle: strings.Repeat("s", MaxActivitySubtitle+1)}, "subtitle to 1000"},
		{"longest allowed", Activity{Type: ActivityError, Status: ActivityFailed, Title: strings.Repeat("t", MaxActivityTitle), Subtitle: strings.Repeat("s", MaxActivitySubtitle)}, ""},
	} {
		got := tc.a.Check()
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: Check() = %q, want %q", tc.name, got, tc.want)
		}
	}
}
