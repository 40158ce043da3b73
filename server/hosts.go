package server

import (
	"net"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"

	"dashboard/model"
)

// runpodProxy is the suffix of the names RunPod's HTTP proxy gives pods.
const runpodProxy = ".proxy.runpod.net"

// checkHost answers only requests sent to a name the dashboard is known by.
// A page on another site whose name has been pointed at the pod (DNS
// rebinding) is same-origin with itself, so the Origin check cannot see it;
// its Host header still names the other site. The Host header is always
// checked; through a trusted proxy, every X-Forwarded-Host entry is too,
// never instead of it: a page can set that header itself, and a proxy may
// pass the page's value on.
func (s *Server) checkHost(c *fiber.Ctx) error {
	names := []string{string(c.Request().Host())}
	if s.fromTrustedProxy(c) {
		names = append(names, forwarded(c, fiber.HeaderXForwardedHost)...)
	}
	for i, name := range names {
		host := hostOnly(name)
		if host == "" && i > 0 {
			continue // an empty entry names nobody
		}
		if !s.hostAllowed(host) {
			return s.unknownHost(c, host)
		}
	}
	return c.Next()
}

func (s *Server) unknownHost(c *fiber.Ctx, host string) error {
	s.log.Warn("refused a request for an unknown host", "host", shorten(host, 100), "path", c.Path())
	return model.Errorf(model.CodeUnknownHost,
		"This dashboard does not answer to the name %q. If that is its address, add the name to DASHBOARD_ALLOWED_HOSTS (or --allowed-hosts), comma-separated, and restart it.",
		shorten(host, 100))
}

// hostOnly lower-cases a Host header and drops its port, the brackets of an
// IPv6 literal and a trailing dot.
func hostOnly(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// hostAllowed reports whether host (from hostOnly) is one of the names of
// the contract: localhost, an IP literal, a name without dots, this
// machine's hostname, a RunPod proxy name, or one of AllowedHosts.
func (s *Server) hostAllowed(host string) bool {
	switch {
	case host == "":
		// Only a client that is not a browser sends no Host (HTTP/1.0),
		// and such a client is no rebinding page.
		return true
	case host == "localhost", !strings.Contains(host, "."):
		return true
	case strings.HasSuffix(host, runpodProxy) && len(host) > len(runpodProxy):
		return true
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if s.cfg.Hostname != "" && host == hostOnly(s.cfg.Hostname) {
		return true
	}
	for _, a := range s.cfg.AllowedHosts {
		a = hostOnly(a)
		if suffix, ok := strings.CutPrefix(a, "*"); ok && strings.HasPrefix(suffix, ".") {
			if strings.HasSuffix(host, suffix) && len(host) > len(suffix) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

// shorten cuts s to at most n bytes for a message or a log line.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
