package server

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// ParsePrefixes reads a comma-separated list of CIDRs or single addresses
// (TRUSTED_PROXIES); "" is an empty list.
func ParsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-unmapBits(p.Addr())).Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR (10.0.0.0/8) nor an address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// unmapBits is what a prefix written on an IPv4-mapped IPv6 address
// (::ffff:10.0.0.0/104) loses when it is turned into an IPv4 one.
func unmapBits(a netip.Addr) int {
	if a.Is4In6() {
		return 96
	}
	return 0
}

// trusted reports whether a is one of the trusted proxies.
func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peer is the address the request came from on the wire.
func peer(c *fiber.Ctx) netip.Addr {
	a, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return a.Unmap()
}

// fromTrustedProxy reports whether the request came through one of the
// trusted proxies, so its X-Forwarded-* headers may be believed.
func (s *Server) fromTrustedProxy(c *fiber.Ctx) bool {
	p := peer(c)
	return p.IsValid() && s.trusted(p)
}

// clientAddr is the client's address: the peer's, or, when the peer is a
// trusted proxy, the nearest X-Forwarded-For entry that is not itself a
// trusted proxy. Entries further left were written by the client and prove
// nothing, so they are never reached while an untrusted hop stands between.
func (s *Server) clientAddr(c *fiber.Ctx) netip.Addr {
	a := peer(c)
	if !a.IsValid() || !s.trusted(a) {
		return a
	}
	hops := forwarded(c, fiber.HeaderXForwardedFor)
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			break
		}
		fwd, err := netip.ParseAddr(h)
		if err != nil {
			break // a garbled header names nobody: count the proxy itself
		}
		a = fwd.Unmap()
		if !s.trusted(a) {
			return a
		}
	}
	return a
}

// forwarded is every entry of an X-Forwarded-* header in the order the hops
// wrote them. A proxy may add its own header line instead of extending the
// client's, so every line counts, not only the first: the client's forged
// line would otherwise stand where the proxy's entry belongs.
func forwarded(c *fiber.Ctx, name string) []string {
	var out []string
	for _, line := range c.Request().Header.PeekAll(name) {
		for _, e := range strings.Split(string(line), ",") {
			out = append(out, strings.TrimSpace(e))
		}
	}
	return out
}

// clientKey names the client for the wrong-password count and the
// WebSocket limits. An IPv6 client is named by its /64: one machine usually
// holds the whole /64, and counting each of its addresses apart would let it
// guess without end.
func (s *Server) clientKey(c *fiber.Ctx) string {
	a := s.clientAddr(c)
	if !a.IsValid() {
		return c.IP()
	}
	if a.Is6() {
		return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
	}
	return a.String()
}
