package server

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
)

const (
	sessionCookie = "dashboard_session"
	sessionTTL    = 30 * 24 * time.Hour
)

// sessions are the signed cookies a login hands out: an expiry and a MAC
// over it and the password, so changing the password, or the signing key
// (logout does), ends every session.
type sessions struct {
	pwHash [32]byte
	key    atomic.Pointer[[]byte]
	now    func() time.Time
}

func newSessions(pwHash [32]byte, key []byte, now func() time.Time) *sessions {
	s := &sessions{pwHash: pwHash, now: now}
	s.key.Store(&key)
	return s
}

// rotate replaces the signing key: every cookie signed before stops working.
func (s *sessions) rotate(key []byte) { s.key.Store(&key) }

// token makes a session cookie value that expires at exp.
func (s *sessions) token(exp time.Time) string {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(append(b, s.mac(b)...))
}

func (s *sessions) mac(exp []byte) []byte {
	m := hmac.New(sha256.New, *s.key.Load())
	m.Write(exp)
	m.Write(s.pwHash[:])
	return m.Sum(nil)
}

func (s *sessions) validToken(v string) bool {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(raw) != 8+sha256.Size {
		return false
	}
	if !hmac.Equal(raw[8:], s.mac(raw[:8])) {
		return false
	}
	return s.now().Unix() < int64(binary.BigEndian.Uint64(raw[:8]))
}

// valid reports whether the request carries a live session cookie.
func (s *sessions) valid(c *fiber.Ctx) bool {
	v := c.Cookies(sessionCookie)
	return v != "" && s.validToken(v)
}

// start sets a new session cookie on the answer.
func (s *sessions) start(c *fiber.Ctx) {
	exp := s.now().Add(sessionTTL)
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: s.token(exp), Path: "/", Expires: exp,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: isHTTPS(c),
	})
}

// end clears the session cookie in the browser.
func endSession(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name: sessionCookie, Value: "", Path: "/", Expires: time.Unix(1, 0), MaxAge: -1,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: isHTTPS(c),
	})
}

func isHTTPS(c *fiber.Ctx) bool {
	return c.Protocol() == "https" || strings.EqualFold(c.Get(fiber.HeaderXForwardedProto), "https")
}
