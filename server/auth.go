package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
)

const (
	sessionCookie = "dashboard_session"
	sessionTTL    = 30 * 24 * time.Hour
	// After maxFailures wrong passwords within failWindow, a client is
	// refused for lockout.
	maxFailures = 5
	failWindow  = time.Minute
	lockout     = 5 * time.Minute
)

// publicPaths need no password: the login page itself, liveness for the
// container health check, and login/logout.
var publicPaths = map[string]bool{
	"/login":       true,
	"/api/health":  true,
	"/api/login":   true,
	"/api/logout":  true,
	"/favicon.ico": true,
}

// publicExt are static files that hold no data; the login page needs them.
var publicExt = map[string]bool{".css": true, ".js": true, ".svg": true, ".ico": true, ".png": true, ".woff2": true}

// guard holds the password check and the record of failed attempts.
type guard struct {
	pwHash [32]byte
	key    []byte
	now    func() time.Time

	mu       sync.Mutex
	failures map[string]*failures
}

type failures struct {
	count int
	first time.Time
	until time.Time
}

func newGuard(password string, key []byte) *guard {
	return &guard{pwHash: sha256.Sum256([]byte(password)), key: key, now: time.Now, failures: map[string]*failures{}}
}

// matches compares in constant time; hashing first makes the length of the
// guess irrelevant too.
func (g *guard) matches(password string) bool {
	h := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(h[:], g.pwHash[:]) == 1
}

// locked reports whether ip must wait, and how long.
func (g *guard) locked(ip string) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.failures[ip]
	if f == nil {
		return false, 0
	}
	if now := g.now(); now.Before(f.until) {
		return true, f.until.Sub(now)
	}
	return false, 0
}

// fail records a wrong password from ip and reports whether it is now locked out.
func (g *guard) fail(ip string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.failures) > 10000 { // bound memory under a spray of addresses
		for k, f := range g.failures {
			if now.After(f.until) && now.Sub(f.first) > failWindow {
				delete(g.failures, k)
			}
		}
	}
	f := g.failures[ip]
	if f == nil || now.Sub(f.first) > failWindow {
		f = &failures{first: now}
		g.failures[ip] = f
	}
	f.count++
	if f.count >= maxFailures {
		f.until = now.Add(lockout)
		f.count, f.first = 0, now
		return true
	}
	return false
}

func (g *guard) succeed(ip string) {
	g.mu.Lock()
	delete(g.failures, ip)
	g.mu.Unlock()
}

// token makes a session cookie value: expiry and a MAC over it and the
// password, so changing the password ends every session.
func (g *guard) token(exp time.Time) string {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b, g.mac(b)...))
}

func (g *guard) mac(exp []byte) []byte {
	m := hmac.New(sha256.New, g.key)
	m.Write(exp)
	m.Write(g.pwHash[:])
	return m.Sum(nil)
}

func (g *guard) validToken(v string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	if !hmac.Equal(raw[8:], g.mac(raw[:8])) {
		return false
	}
	return g.now().Unix() < int64(binary.BigEndian.Uint64(raw[:8]))
}

// authenticated accepts a valid session cookie or "Authorization: Bearer <password>".
func (g *guard) authenticated(c *fiber.Ctx) (ok, triedBearer bool) {
	if v := c.Cookies(sessionCookie); v != "" && g.validToken(v) {
		return true, false
	}
	if h := c.Get(fiber.HeaderAuthorization); strings.HasPrefix(h, "Bearer ") {
		return g.matches(strings.TrimPrefix(h, "Bearer ")), true
	}
	return false, false
}

// requireLogin lets a request through when no password is set, when it is
// public, or when it is authenticated.
func (s *Server) requireLogin(c *fiber.Ctx) error {
	if s.guard == nil || publicPaths[c.Path()] || publicExt[path.Ext(c.Path())] {
		return c.Next()
	}
	ok, bearer := s.guard.authenticated(c)
	if ok {
		return c.Next()
	}
	if bearer {
		if locked, wait := s.guard.locked(c.IP()); locked {
			return tooMany(c, wait)
		}
		if s.guard.fail(c.IP()) {
			s.log.Warn("too many wrong passwords; client locked out", "ip", c.IP(), "for", lockout.String())
		} else {
			s.log.Warn("wrong password in Authorization header", "ip", c.IP())
		}
	}
	if strings.HasPrefix(c.Path(), "/api/") || c.Path() == "/ws" {
		return errorf(http.StatusUnauthorized, "unauthorized", "This dashboard needs its password: log in, or send \"Authorization: Bearer <password>\".")
	}
	return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), http.StatusSeeOther)
}

func tooMany(c *fiber.Ctx, wait time.Duration) error {
	c.Set(fiber.HeaderRetryAfter, itoa(int64(wait.Seconds())+1))
	return errorf(http.StatusTooManyRequests, "too_many_attempts", "Too many wrong passwords: wait %d minutes and try again.", int(wait.Minutes())+1)
}

type loginBody struct {
	Password string `json:"password"`
}

func (s *Server) handleLogin(c *fiber.Ctx) error {
	if s.guard == nil {
		return c.JSON(fiber.Map{"ok": true, "password_required": false})
	}
	if locked, wait := s.guard.locked(c.IP()); locked {
		return tooMany(c, wait)
	}
	var b loginBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if !s.guard.matches(b.Password) {
		if s.guard.fail(c.IP()) {
			s.log.Warn("too many wrong passwords; client locked out", "ip", c.IP(), "for", lockout.String())
		} else {
			s.log.Warn("wrong password at login", "ip", c.IP())
		}
		return errorf(http.StatusUnauthorized, "wrong_password", "That password is not right.")
	}
	s.guard.succeed(c.IP())
	exp := s.guard.now().Add(sessionTTL)
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: s.guard.token(exp), Path: "/", Expires: exp,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: isHTTPS(c),
	})
	s.log.Info("logged in", "ip", c.IP())
	return c.JSON(fiber.Map{"ok": true, "password_required": true})
}

func (s *Server) handleLogout(c *fiber.Ctx) error {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: "", Path: "/", Expires: time.Unix(1, 0), MaxAge: -1,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: isHTTPS(c),
	})
	return c.JSON(fiber.Map{"ok": true})
}

func isHTTPS(c *fiber.Ctx) bool {
	return c.Protocol() == "https" || strings.EqualFold(c.Get(fiber.HeaderXForwardedProto), "https")
}

// crossSite refuses a state-changing request sent by another site's page,
// with or without a password: a browser always sends Origin (or
// Sec-Fetch-Site) on those, and a form post cannot send JSON.
func (s *Server) crossSite(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	if c.Get("Sec-Fetch-Site") == "cross-site" || !sameOrigin(c) {
		s.log.Warn("refused a cross-site request", "method", c.Method(), "path", c.Path(), "origin", c.Get(fiber.HeaderOrigin))
		return errorf(http.StatusForbidden, "cross_site", "Requests that change something must come from the dashboard's own pages.")
	}
	if len(c.Body()) > 0 {
		ct := strings.ToLower(strings.TrimSpace(strings.SplitN(c.Get(fiber.HeaderContentType), ";", 2)[0]))
		if ct != fiber.MIMEApplicationJSON {
			return errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the body as JSON with Content-Type: application/json.")
		}
	}
	return c.Next()
}

// securityHeaders sets the headers every answer carries.
func securityHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	return c.Next()
}
