package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"dashboard/model"
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

// guard is the password check: it knows the password (as a hash), the
// signed sessions it hands out, and who is locked out for guessing.
type guard struct {
	pwHash   [32]byte
	sessions *sessions
	lockout  *lockout
}

func newGuard(password string, key []byte, now func() time.Time) *guard {
	h := sha256.Sum256([]byte(password))
	return &guard{pwHash: h, sessions: newSessions(h, key, now), lockout: newLockout(now)}
}

// matches compares in constant time; hashing first makes the length of the
// guess irrelevant too.
func (g *guard) matches(password string) bool {
	h := sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(h[:], g.pwHash[:]) == 1
}

// requireLogin lets a request through when no password is set, when it is
// public, or when it is authenticated by a session cookie or by
// "Authorization: Bearer <password>".
func (s *Server) requireLogin(c *fiber.Ctx) error {
	p := c.Path()
	if s.guard == nil || publicPaths[p] || (!isAPIPath(p) && publicExt[path.Ext(p)]) {
		return c.Next()
	}
	if s.guard.sessions.valid(c) {
		return c.Next()
	}
	if h := c.Get(fiber.HeaderAuthorization); strings.HasPrefix(h, "Bearer ") {
		// A locked-out client gets no answer about any guess, right or wrong.
		client := s.clientKey(c)
		if locked, wait := s.guard.lockout.locked(client); locked {
			return tooMany(c, wait)
		}
		if s.guard.matches(strings.TrimPrefix(h, "Bearer ")) {
			return c.Next()
		}
		s.wrongPassword(client, "wrong password in Authorization header")
	}
	if isAPIPath(p) {
		return model.Errorf(model.CodeUnauthorized, "This dashboard needs its password: log in, or send \"Authorization: Bearer <password>\".")
	}
	return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
}
