package server

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

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
	switch ok, err := s.authenticate(c); {
	case err != nil:
		return err
	case ok:
		return c.Next()
	case isAPIPath(p):
		return needsPassword()
	}
	return c.Redirect("/login?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
}

func needsPassword() error {
	return model.Errorf(model.CodeUnauthorized, "This dashboard needs its password: log in, or send \"Authorization: Bearer <password>\".")
}

// authenticate tells whether the request carries a live session cookie or
// the password as a Bearer token. A wrong password counts towards the
// lockout; a locked-out client gets an error and no answer about any
// guess, right or wrong.
func (s *Server) authenticate(c *fiber.Ctx) (bool, error) {
	if s.guard.sessions.valid(c) {
		return true, nil
	}
	h := c.Get(fiber.HeaderAuthorization)
	if !strings.HasPrefix(h, "Bearer ") {
		return false, nil
	}
	client := s.clientKey(c)
	if locked, wait := s.guard.lockout.locked(client); locked {
		return false, tooMany(c, wait)
	}
	if s.guard.matches(strings.TrimPrefix(h, "Bearer ")) {
		return true, nil
	}
	s.wrongPassword(client, "wrong password in Authorization header")
	return false, nil
}

// mayOpen tells, from the headers alone, whether a request may send a
// large body: with a password set, only a logged-in one may, so nobody
// can make the dashboard read megabytes before the password check. It
// decides a size only: a wrong guess is answered (and counted) by
// authenticate, either in requireLogin or when the body was refused.
//
// The headers do not say who the client is, so its lockout cannot be
// looked up here. A right Bearer password would then be told from a wrong
// one by a locked-out client (the server waits for the body of the one,
// refuses the other at once): while any client is locked out, a Bearer
// password opens no large body, and every guess is answered alike.
func (s *Server) mayOpen(h *fasthttp.RequestHeader) bool {
	if s.guard == nil {
		return true
	}
	if v := h.Cookie(sessionCookie); len(v) > 0 && s.guard.sessions.validToken(string(v)) {
		return true
	}
	auth, ok := bytes.CutPrefix(h.Peek(fiber.HeaderAuthorization), []byte("Bearer "))
	return ok && !s.guard.lockout.anyLocked() && s.guard.matches(string(auth))
}

// refusedBeforeLogin gives a large body refused because the request was not
// logged in (see mayOpen) the answer the password check would have given:
// 401, or 429 when locked out, with a wrong Bearer password counted, so a
// large body is no way round the lockout.
func (s *Server) refusedBeforeLogin(c *fiber.Ctx, err error) error {
	var fe *fiber.Error
	if s.guard == nil || !errors.As(err, &fe) || fe.Code != fiber.StatusRequestEntityTooLarge {
		return err
	}
	if _, large := largeBodies[c.Method()+" "+c.Path()]; !large {
		return err
	}
	switch ok, aerr := s.authenticate(c); {
	case aerr != nil:
		return aerr
	case !ok:
		return needsPassword()
	}
	return err
}
