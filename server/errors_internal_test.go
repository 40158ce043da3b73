package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// A panic in a handler becomes the error envelope and one log line.
func TestPanicBecomesEnvelope(t *testing.T) {
	var logs bytes.Buffer
	s := New(Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	s.app.Get("/boom", func(c *fiber.Ctx) error { panic("kaboom") })
	req := httptest.NewRequest("GET", "/boom", nil)
	req.Host = "localhost"
	resp, err := s.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if resp.StatusCode != 500 || json.Unmarshal(raw, &env) != nil || env.Error.Code != "internal" || strings.Contains(string(raw), "kaboom") {
		t.Fatalf("panic answered %d %s", resp.StatusCode, raw)
	}
	if n := strings.Count(logs.String(), "kaboom"); n < 1 {
		t.Fatalf("panic not logged:\n%s", logs.String())
	}
	if n := strings.Count(logs.String(), `msg="request failed"`); n != 1 {
		t.Fatalf("error logged %d times, want once:\n%s", n, logs.String())
	}
}
