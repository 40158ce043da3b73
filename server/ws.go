package server

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"dashboard/db"
	"dashboard/downloader"
	"dashboard/settings"
)

// Snapshot is the first frame a WebSocket client gets.
type Snapshot struct {
	Downloads []downloader.Download `json:"downloads"`
	Activity  []db.Activity         `json:"activity"`
	Settings  settings.View         `json:"settings"`
}

// takeSnapshot reads the state a new client starts from.
func (s *Server) takeSnapshot() (any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := s.cfg.Store.ListActivity(ctx, db.ActivityFilter{Limit: 50})
	if err != nil {
		return nil, fmt.Errorf("snapshot activity: %w", err)
	}
	view, err := s.cfg.Settings.View(ctx)
	if err != nil {
		return nil, fmt.Errorf("snapshot settings: %w", err)
	}
	return Snapshot{Downloads: nonNil(s.cfg.Downloads.Downloads()), Activity: nonNil(rows), Settings: view}, nil
}

func (s *Server) handleWS() fiber.Handler {
	return websocket.New(func(c *websocket.Conn) {
		if err := s.cfg.Hub.Serve(c, s.takeSnapshot); err != nil {
			s.log.Debug("websocket client ended", "err", err)
		}
	}, websocket.Config{
		// Origins are checked by checkOrigin before the upgrade.
		ReadBufferSize:  4096,
		WriteBufferSize: 16384,
	})
}

// checkOrigin refuses a browser from another site before the upgrade; a
// client that sends no Origin is not a browser and may connect.
func (s *Server) checkOrigin(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return errorf(http.StatusUpgradeRequired, "upgrade_required", "This is the dashboard's WebSocket: connect with a WebSocket client.")
	}
	if !sameOrigin(c) {
		s.log.Warn("refused websocket from another origin", "origin", c.Get(fiber.HeaderOrigin))
		return errorf(http.StatusForbidden, "forbidden_origin", "WebSocket connections are only accepted from the dashboard's own pages.")
	}
	return c.Next()
}

// sameOrigin reports whether the request's Origin, when it has one, names the
// host the request was sent to (directly or through the pod's proxy).
func sameOrigin(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, h := range []string{c.Get(fiber.HeaderHost), c.Get(fiber.HeaderXForwardedHost)} {
		if h != "" && strings.EqualFold(hostWithPort(u.Host, u.Scheme), hostWithPort(h, u.Scheme)) {
			return true
		}
	}
	return false
}

// hostWithPort adds the scheme's default port so "a" and "a:80" compare equal.
func hostWithPort(host, scheme string) string {
	if strings.LastIndexByte(host, ':') > strings.LastIndexByte(host, ']') {
		return host
	}
	if scheme == "https" || scheme == "wss" {
		return host + ":443"
	}
	return host + ":80"
}
