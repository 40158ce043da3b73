package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync/atomic"

	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"dashboard/db"
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
	key    atomic.Pointer[[]byte] // replaced on logout, which ends every session
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
	g := &guard{pwHash: sha256.Sum256([]byte(password)), now: time.Now, failures: map[string]*failures{}}
	g.key.Store(&key)
	return g
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
	m := hmac.New(sha256.New, *g.key.Load())
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

// validCookie reports whether the request carries a live session cookie.
func (g *guard) validCookie(c *fiber.Ctx) bool {
	v := c.Cookies(sessionCookie)
	return v != "" && g.validToken(v)
}

// clientKey names the client for the wrong-password count. Behind the pod's
// proxy every request comes from the proxy's address, so there the last
// X-Forwarded-For entry (the one the proxy itself added, which a client
// cannot forge) names the client; otherwise one stranger could lock the
// owner out.
func clientKey(c *fiber.Ctx) string {
	peer := c.Context().RemoteIP()
	xff := c.Get(fiber.HeaderXForwardedFor)
	if xff == "" || peer == nil || !(peer.IsLoopback() || peer.IsPrivate()) {
		return c.IP()
	}
	parts := strings.Split(xff, ",")
	if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
		return strings.Clone(last) // kept in the failure map after the request's buffers are reused
	}
	return c.IP()
}

// requireLogin lets a request through when no password is set, when it is
// public, or when it is authenticated.
func (s *Server) requireLogin(c *fiber.Ctx) error {
	if s.guard == nil || publicPaths[c.Path()] || (!isAPIPath(c.Path()) && publicExt[path.Ext(c.Path())]) {
		return c.Next()
	}
	if s.guard.validCookie(c) {
		return c.Next()
	}
	if h := c.Get(fiber.HeaderAuthorization); strings.HasPrefix(h, "Bearer ") {
		// A locked-out client gets no answer about any guess, right or wrong.
		client := clientKey(c)
		if locked, wait := s.guard.locked(client); locked {
			return tooMany(c, wait)
		}
		if s.guard.matches(strings.TrimPrefix(h, "Bearer ")) {
			return c.Next()
		}
		if s.guard.fail(client) {
			s.log.Warn("too many wrong passwords; client locked out", "client", client, "for", lockout.String())
		} else {
			s.log.Warn("wrong password in Authorization header", "client", client)
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
	client := clientKey(c)
	if locked, wait := s.guard.locked(client); locked {
		return tooMany(c, wait)
	}
	var b loginBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if !s.guard.matches(b.Password) {
		if s.guard.fail(client) {
			s.log.Warn("too many wrong passwords; client locked out", "client", client, "for", lockout.String())
		} else {
			s.log.Warn("wrong password at login", "client", client)
		}
		return errorf(http.StatusUnauthorized, "wrong_password", "That password is not right.")
	}
	s.guard.succeed(client)
	exp := s.guard.now().Add(sessionTTL)
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: s.guard.token(exp), Path: "/", Expires: exp,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: isHTTPS(c),
	})
	s.log.Info("logged in", "client", client)
	return c.JSON(fiber.Map{"ok": true, "password_required": true})
}

// handleLogout ends the session: a logged-in browser's logout replaces the
// signing key, so every copy of every session cookie stops working.
func (s *Server) handleLogout(c *fiber.Ctx) error {
	if s.guard != nil && s.guard.validCookie(c) {
		key, err := NewSessionKey(c.UserContext(), s.cfg.Store)
		if err != nil {
			return err
		}
		s.guard.key.Store(&key)
		s.log.Info("logged out; every session ended", "client", clientKey(c))
	}
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

const sessionKeySetting = "session_key"

// SessionKey returns the key that signs session cookies, made once and kept
// in the database so logins survive restarts.
func SessionKey(ctx context.Context, store *db.Store) ([]byte, error) {
	v, ok, err := store.Setting(ctx, sessionKeySetting)
	if err != nil {
		return nil, fmt.Errorf("read session key: %w", err)
	}
	if b, err := hex.DecodeString(v); ok && err == nil && len(b) == 32 {
		return b, nil
	}
	return NewSessionKey(ctx, store)
}

// NewSessionKey makes and saves a new signing key.
func NewSessionKey(ctx context.Context, store *db.Store) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("make session key: %w", err)
	}
	if err := store.SetSettings(ctx, map[string]string{sessionKeySetting: hex.EncodeToString(b)}); err != nil {
		return nil, fmt.Errorf("save session key: %w", err)
	}
	return b, nil
}

// securityHeaders sets the headers every answer carries.
func securityHeaders(c *fiber.Ctx) error {
	setSecurityHeaders(c)
	return c.Next()
}

func setSecurityHeaders(c *fiber.Ctx) {
	h := &c.Response().Header
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}
