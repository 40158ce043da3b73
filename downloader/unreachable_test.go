package downloader

import (
	"net"
	"strings"
	"testing"

	"dashboard/model"
)

// A host nothing listens on, or a name that does not resolve: the download
// fails naming what went wrong, after its retries, not at once with
// "context canceled" (the probe's context was released before its cause
// was read, and that cause hid the request's own error).
func TestUnreachableHostIsNamed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close() // nothing listens there now
	for _, tt := range []struct{ name, url, want string }{
		{"connection refused", "http://" + refused + "/f.bin", "connection refused"},
		{"no such host", "http://nosuch.invalid/f.bin", "lookup nosuch.invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "http://127.0.0.1:1", onePreset("P", "a/f.bin", tt.url, ""), envOpts{cfg: func(c *Config) { c.MaxRetries = 1 }})
			d := e.wait(e.install("P").ID)
			if d.Status != model.DownloadFailed || d.Error == nil || d.Error.Code != model.CodeNetwork {
				t.Fatalf("download = %+v %+v", d, d.Error)
			}
			msg := d.Error.Message
			if !strings.Contains(msg, tt.want) || strings.Contains(msg, "context canceled") || !strings.Contains(msg, "gave up after 2 attempts") {
				t.Fatalf("error = %q, want %q named after the retries", msg, tt.want)
			}
		})
	}
}
