package server

import (
	"net/url"
	"strings"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

// crossSite refuses a state-changing request sent by another site's page,
// with or without a password: a browser always sends Origin (or
// Sec-Fetch-Site) on those, and a form post cannot send JSON.
func (s *Server) crossSite(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	if c.Get("Sec-Fetch-Site") == "cross-site" || !s.sameOrigin(c) {
		s.log.Warn("refused a cross-site request", "method", c.Method(), "path", c.Path(), "origin", c.Get(fiber.HeaderOrigin))
		return model.Errorf(model.CodeCrossSite, "Requests that change something must come from the dashboard's own pages.")
	}
	if len(c.Body()) > 0 {
		ct := strings.ToLower(strings.TrimSpace(strings.SplitN(c.Get(fiber.HeaderContentType), ";", 2)[0]))
		if ct != fiber.MIMEApplicationJSON && !(ct == "image/png" && takesImages[c.Method()+" "+c.Path()]) {
			return model.Errorf(model.CodeUnsupportedType, "Send the body as JSON with Content-Type: application/json.")
		}
	}
	return c.Next()
}

// takesImages are the routes that also take a PNG body: a form cannot send
// one cross-site without CORS, so it is as safe as JSON.
var takesImages = map[string]bool{
	"POST /api/workflows/analyze": true,
}

// checkOrigin refuses a browser from another site before the upgrade; a
// client that sends no Origin is not a browser and may connect.
func (s *Server) checkOrigin(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return model.Errorf(model.CodeUpgradeRequired, "This is the dashboard's WebSocket: connect with a WebSocket client.")
	}
	if !s.sameOrigin(c) {
		s.log.Warn("refused websocket from another origin", "origin", c.Get(fiber.HeaderOrigin))
		return model.Errorf(model.CodeForbiddenOrigin, "WebSocket connections are only accepted from the dashboard's own pages.")
	}
	return c.Next()
}

// sameOrigin reports whether the request's Origin, when it has one, names the
// host the request was sent to (directly, or through a trusted proxy that
// says so in X-Forwarded-Host).
func (s *Server) sameOrigin(c *fiber.Ctx) bool {
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	names := []string{c.Get(fiber.HeaderHost)}
	if s.fromTrustedProxy(c) {
		// The first proxy saw the browser's name; checkHost has allowed
		// every entry already.
		if fwd := forwarded(c, fiber.HeaderXForwardedHost); len(fwd) > 0 {
			names = append(names, fwd[0])
		}
	}
	for _, h := range names {
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
